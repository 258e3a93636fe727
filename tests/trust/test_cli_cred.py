"""`sfa trust cred issue|delegate|verify` end to end on real files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sfa.cli.main import main
from sfa.trust.credential import parse_credential
from sfa.trust.keys import save_private_key


@pytest.fixture(scope="module")
def files(tmp_path_factory, alice, bob, exp1_slice) -> Path:
    directory = tmp_path_factory.mktemp("cli_cred")
    for name, principal in (("alice", alice), ("bob", bob), ("exp1", exp1_slice)):
        (directory / f"{name}.gid").write_text(principal.gid.to_pem())
        save_private_key(directory / f"{name}.pkey", principal.key)
    return directory


def _run(*args: str):
    return CliRunner().invoke(main, ["trust", "cred", *args])


def test_issue_delegate_verify(files, princeton, roots_dir) -> None:
    cred = files / "slice.cred"
    result = _run("issue", "--authority-dir", str(princeton.directory), "--owner",
                  str(files / "alice.gid"), "--target", str(files / "exp1.gid"),
                  "--privileges", "embed,info", "--expires", "2099-01-01T00:00:00Z",
                  "--delegatable", "--out", str(cred))
    assert result.exit_code == 0, result.output
    assert "embed (delegatable)" in result.output
    assert parse_credential(cred.read_text()).expires.year == 2099

    delegated = files / "bob.cred"
    result = _run("delegate", str(cred), "--key", str(files / "alice.pkey"), "--gid",
                  str(files / "alice.gid"), "--to", str(files / "bob.gid"), "--privileges",
                  "embed", "--out", str(delegated))
    assert result.exit_code == 0, result.output
    assert parse_credential(delegated.read_text()).depth == 1

    result = _run("verify", str(delegated), "--roots", str(roots_dir), "--caller",
                  str(files / "bob.gid"), "--target",
                  "urn:publicid:IDN+plc:princeton+slice+exp1", "--operation", "Allocate")
    assert result.exit_code == 0, result.output
    assert "owner:      urn:publicid:IDN+plc:princeton+user+bob" in result.output
    assert "privileges: embed" in result.output


def test_verify_refusals_exit_1_with_the_code(files, princeton, roots_dir) -> None:
    cred = files / "info.cred"
    assert _run("issue", "--authority-dir", str(princeton.directory), "--owner",
                str(files / "alice.gid"), "--target", str(files / "exp1.gid"),
                "--privileges", "info", "--out", str(cred)).exit_code == 0
    stolen = _run("verify", str(cred), "--roots", str(roots_dir), "--caller",
                  str(files / "bob.gid"))
    assert stolen.exit_code == 1 and "CREDENTIAL_MISMATCH" in stolen.output
    forbidden = _run("verify", str(cred), "--roots", str(roots_dir), "--operation",
                     "createsliver")
    assert forbidden.exit_code == 1 and "FORBIDDEN" in forbidden.output
    expired = _run("verify", str(cred), "--roots", str(roots_dir), "--at",
                   "2200-01-01T00:00:00Z")
    assert expired.exit_code == 1 and "CREDENTIAL_EXPIRED" in expired.output
    wrong = _run("verify", str(cred), "--roots", str(roots_dir), "--target",
                 "urn:publicid:IDN+plc:princeton+slice+other")
    assert wrong.exit_code == 1 and "CREDENTIAL_MISMATCH" in wrong.output
    plain = _run("verify", str(cred), "--roots", str(roots_dir))
    assert plain.exit_code == 0 and "privileges: info" in plain.output


def test_delegate_refuses_non_owner(files, princeton) -> None:
    cred = files / "alice2.cred"
    assert _run("issue", "--authority-dir", str(princeton.directory), "--owner",
                str(files / "alice.gid"), "--target", str(files / "exp1.gid"),
                "--delegatable", "--out", str(cred)).exit_code == 0
    result = _run("delegate", str(cred), "--key", str(files / "bob.pkey"), "--gid",
                  str(files / "bob.gid"), "--to", str(files / "bob.gid"), "--out",
                  str(files / "x.cred"))
    assert result.exit_code == 1 and "FORBIDDEN" in result.output
    assert not (files / "x.cred").exists()
