"""Trusted roots: load a directory, reload when it changes, write/remove safely, thread-safe."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from sfa.errors import BadArgs, CredentialInvalid, GeniCode
from sfa.trust.chain import verify_gid_chain
from sfa.trust.hierarchy import Authority
from sfa.trust.revoked import REVOKED_FILE
from sfa.trust.roots import TrustedRoots
from tests.trust.conftest import Principal


def _hrns(roots: TrustedRoots) -> list[str]:
    return sorted(gid.hrn for gid in roots.roots)


def test_loads_every_suffix_and_ignores_others(
    tmp_path: Path,
    plc: Authority,
    ple: Authority,
    evil: Authority,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "plc.gid").write_text(plc.gid.to_pem())
    (tmp_path / "ple.pem").write_text(ple.gid.to_pem())
    (tmp_path / "evil.txt").write_text(evil.gid.to_pem())
    (tmp_path / "broken.crt").write_text("not a certificate")
    (tmp_path / "dir.gid").mkdir()
    with caplog.at_level(logging.WARNING, logger="sfa.trust.roots"):
        roots = TrustedRoots(tmp_path)
    assert _hrns(roots) == ["plc", "ple"]
    assert "broken.crt" in caplog.text
    assert roots.directory == tmp_path and len(roots) == 2 and "plc" in repr(roots)
    (tmp_path / "evil.crt").write_text(evil.gid.to_pem())
    assert roots.reload_if_changed()
    assert _hrns(roots) == ["evil", "plc", "ple"]


def test_first_certificate_of_a_chain_file_is_the_anchor(
    tmp_path: Path, princeton: Authority
) -> None:
    (tmp_path / "princeton.gid").write_text(princeton.gid.to_pem())
    roots = TrustedRoots(tmp_path)
    assert [gid.hrn for gid in roots.roots] == ["plc.princeton"]


def test_reload_only_when_changed(tmp_path: Path, plc: Authority, ple: Authority) -> None:
    roots = TrustedRoots(tmp_path)
    assert roots.roots == () and not roots.reload_if_changed()
    version = roots.version
    path = tmp_path / "peer.gid"
    path.write_text(plc.gid.to_pem())
    assert roots.reload_if_changed() and roots.version > version
    assert _hrns(roots) == ["plc"]
    assert not roots.reload_if_changed()
    path.write_text(ple.gid.to_pem())  # the same file now names another root
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert roots.reload_if_changed()
    assert _hrns(roots) == ["ple"]
    path.unlink()
    assert roots.reload_if_changed() and roots.roots == ()


def test_missing_directory_is_empty(tmp_path: Path, plc: Authority) -> None:
    roots = TrustedRoots(tmp_path / "absent")
    assert roots.roots == ()
    (tmp_path / "absent").mkdir()
    (tmp_path / "absent" / "plc.gid").write_text(plc.gid.to_pem())
    assert roots.reload_if_changed() and _hrns(roots) == ["plc"]


def test_find_root_needs_subject_and_key(
    tmp_path: Path, plc: Authority, alice: Principal
) -> None:
    roots = TrustedRoots(gids=[plc.gid])
    assert roots.find_root_for(plc.gid.certificate) == plc.gid
    assert roots.find_root_for(alice.gid.certificate) is None
    impostor = Authority.create_root(tmp_path / "impostor", "plc")
    assert impostor.gid.certificate.subject == plc.gid.certificate.subject
    assert roots.find_root_for(impostor.gid.certificate) is None


def test_add_in_memory_survives_reload(tmp_path: Path, plc: Authority, ple: Authority) -> None:
    roots = TrustedRoots(tmp_path, gids=[plc.gid])
    roots.add(ple.gid)
    roots.add(ple.gid)  # duplicates collapse
    assert _hrns(roots) == ["plc", "ple"]
    (tmp_path / "x.gid").write_text(plc.gid.to_pem())
    assert roots.reload_if_changed()
    assert _hrns(roots) == ["plc", "ple"]


def test_write_and_remove(tmp_path: Path, plc: Authority, ple: Authority) -> None:
    roots = TrustedRoots(tmp_path / "roots")
    path = roots.write(ple.gid, "ple")
    assert path == tmp_path / "roots" / "ple.gid" and path.read_text() == ple.gid.to_pem()
    roots.write(plc.gid, "plc.pem")
    assert _hrns(roots) == ["plc", "ple"]
    assert sorted(p.name for p in (tmp_path / "roots").iterdir()) == ["plc.pem", "ple.gid"]
    assert roots.remove("ple") == 1
    assert _hrns(roots) == ["plc"] and not (tmp_path / "roots" / "ple.gid").exists()
    assert roots.remove("nobody") == 0


@pytest.mark.parametrize("name", ["../escape", ".hidden", "a/b", "", "a..b", "x" * 200, "a b"])
def test_write_refuses_unsafe_names(tmp_path: Path, plc: Authority, name: str) -> None:
    roots = TrustedRoots(tmp_path / "roots")
    with pytest.raises(BadArgs) as info:
        roots.write(plc.gid, name)
    assert info.value.code == GeniCode.BADARGS
    assert not (tmp_path / "roots").exists() and not (tmp_path / "escape.gid").exists()
    assert roots.roots == ()


def test_write_needs_a_directory(plc: Authority) -> None:
    roots = TrustedRoots(gids=[plc.gid])
    with pytest.raises(BadArgs):
        roots.write(plc.gid, "plc")
    assert not roots.reload_if_changed()
    assert roots.remove("plc") == 1 and roots.roots == ()


def test_concurrent_readers_and_writers(tmp_path: Path, plc: Authority, ple: Authority) -> None:
    roots = TrustedRoots(tmp_path, gids=[plc.gid])
    errors: list[BaseException] = []
    start = threading.Barrier(5)

    def reader() -> None:
        try:
            start.wait()
            for _ in range(300):
                roots.reload_if_changed()
                assert roots.find_root_for(plc.gid.certificate) == plc.gid
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        try:
            start.wait()
            for index in range(30):
                roots.write(ple.gid, f"ple{index % 3}")
                roots.remove("ple")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    roots.reload_if_changed()
    assert _hrns(roots) == ["plc"]


def test_a_revoked_key_fails_every_chain_through_it(
    tmp_path: Path, plc: Authority, princeton: Authority, alice: Principal, bob: Principal
) -> None:
    """Revoking alice's key refuses her GID (a cached success included), not bob's; another
    reader of the directory sees it too; an operator lifts it by deleting the line."""
    roots = TrustedRoots(tmp_path)
    roots.write(plc.gid, "plc")
    verify_gid_chain(alice.gid, roots)  # cached as verified
    version = roots.version
    roots.revoke(alice.gid)
    assert roots.version > version and roots.is_revoked(alice.gid.certificate)
    with pytest.raises(CredentialInvalid, match="revoked"):
        verify_gid_chain(alice.gid, roots)
    verify_gid_chain(bob.gid, roots)
    other = TrustedRoots(tmp_path)  # another service of the deployment
    with pytest.raises(CredentialInvalid, match="revoked"):
        verify_gid_chain(alice.gid, other)
    roots.revoke(alice.gid)  # idempotent: one line
    listed = (tmp_path / REVOKED_FILE).read_text().splitlines()
    assert sum("plc.princeton.alice" in line for line in listed) == 1
    (tmp_path / REVOKED_FILE).write_text("\n".join(
        line for line in listed if "alice" not in line) + "\n")
    assert other.reload_if_changed()
    verify_gid_chain(alice.gid, other)
    assert _hrns(other) == ["plc"]  # the list is not a root
