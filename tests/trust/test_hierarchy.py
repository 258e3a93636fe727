"""Authorities on disk: roots, sub-authorities, issued GIDs, service GIDs, the subtree rule."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509

from sfa.errors import AlreadyExists, BadArgs, Forbidden, GeniCode, SearchFailed, SfaError
from sfa.trust.chain import verify_gid_chain
from sfa.trust.gid import GID
from sfa.trust.hierarchy import (
    GID_FILE,
    KEY_FILE,
    Authority,
    AuthorityStore,
    authority_dir_name,
)
from sfa.trust.keys import (
    load_public_key,
    public_key_to_openssh,
    public_keys_equal,
    save_private_key,
)
from sfa.trust.roots import TrustedRoots
from tests.trust.conftest import Principal


def _snapshot(base: Path) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def _refused(error: type[SfaError], base: Path, func, *args, **kwargs) -> SfaError:
    before = _snapshot(base)
    with pytest.raises(error) as info:
        func(*args, **kwargs)
    assert info.value.code == error.code
    assert _snapshot(base) == before  # nothing changed on disk
    return info.value


def test_store_layout_and_files(authority_store: AuthorityStore, plc: Authority,
                                princeton: Authority) -> None:
    assert plc.directory == authority_store.base_dir / "plc"
    assert princeton.directory == authority_store.base_dir / "plc" / "princeton"
    for authority in (plc, princeton):
        assert stat.S_IMODE((authority.directory / KEY_FILE).stat().st_mode) == 0o600
        assert GID.from_pem((authority.directory / GID_FILE).read_bytes()) == authority.gid
    assert princeton.gid.chain == (plc.gid.certificate,)
    assert (plc.hrn, plc.urn) == ("plc", "urn:publicid:IDN+plc+authority+sa")
    loaded = authority_store.get("plc.princeton")
    assert loaded.gid == princeton.gid
    assert loaded.key.private_numbers() == princeton.key.private_numbers()
    assert princeton.gid.is_ca and princeton.gid.type == "authority"
    assert {"plc", "plc.princeton"} <= set(authority_store.hrns())


def test_authority_for_is_longest_existing(authority_store: AuthorityStore, plc: Authority,
                                           princeton: Authority) -> None:
    assert authority_store.authority_for("plc.princeton.alice").hrn == "plc.princeton"
    assert authority_store.authority_for("plc.princeton").hrn == "plc.princeton"
    assert authority_store.authority_for("plc.mit.bob").hrn == "plc"
    assert authority_store.authority_for("plc.prince.x").hrn == "plc"
    with pytest.raises(SearchFailed):
        authority_store.authority_for("nowhere.x")
    with pytest.raises(SearchFailed):
        authority_store.get("plc.mit")


def test_issue_user_slice_node(princeton: Authority, trusted_roots: TrustedRoots) -> None:
    for hrn, type in [("plc.princeton.carol", "user"), ("plc.princeton.exp9", "slice"),
                      (r"plc.princeton.node1\.princeton\.edu", "node")]:
        gid, key = princeton.issue_gid(hrn, type)
        assert key is not None and key.key_size == 2048
        assert public_keys_equal(gid.public_key, key.public_key())
        assert (gid.hrn, gid.type, gid.is_ca) == (hrn, type, False)
        assert gid.chain == (princeton.gid.certificate, *princeton.gid.chain)
        assert verify_gid_chain(gid, trusted_roots).hrn == "plc"


def test_issue_for_an_existing_openssh_key(princeton: Authority, alice: Principal) -> None:
    openssh = public_key_to_openssh(alice.key)
    gid, key = princeton.issue_gid("plc.princeton.alice2", "user",
                                   public_key=load_public_key(openssh), email="a@b.example")
    assert key is None
    assert public_keys_equal(gid.public_key, alice.key.public_key())
    assert gid.email == "a@b.example"


def test_issue_sub_authority_gid_is_ca(plc: Authority, trusted_roots: TrustedRoots) -> None:
    gid, _ = plc.issue_gid("plc.mit", "authority", public_key=plc.key.public_key())
    assert gid.is_ca and gid.type == "authority"
    assert (gid.not_after - gid.not_before).days > 4 * 365
    assert verify_gid_chain(gid, trusted_roots).hrn == "plc"


@pytest.mark.parametrize(
    "hrn",
    ["ple.inria.bob", "plc.mit.bob", "plc.prince.bob", "plc.princeton", "plc", "plcx.bob"],
)
def test_refuses_names_outside_the_subtree(princeton: Authority, authority_store: AuthorityStore,
                                           hrn: str) -> None:
    error = _refused(Forbidden, authority_store.base_dir, princeton.issue_gid, hrn, "user",
                     public_key=princeton.key.public_key())
    assert "beneath" in error.message


def test_refuses_sub_authority_outside_the_subtree(
    princeton: Authority, authority_store: AuthorityStore, tmp_path: Path
) -> None:
    _refused(Forbidden, tmp_path, princeton.create_sub_authority, "plc.mit", tmp_path / "mit")
    assert not (tmp_path / "mit").exists()


def test_issue_bad_arguments(princeton: Authority, authority_store: AuthorityStore) -> None:
    base = authority_store.base_dir
    public = princeton.key.public_key()
    _refused(BadArgs, base, princeton.issue_gid, "plc.princeton.x", "authority+am",
             public_key=public)
    _refused(BadArgs, base, princeton.issue_gid, "plc.princeton..x", "user", public_key=public)
    _refused(BadArgs, base, princeton.issue_gid, "plc.princeton.x", "bad type",
             public_key=public)
    _refused(BadArgs, base, princeton.issue_service_gid, "xx", "h.example", public_key=public)
    for host in ["", "bad host", "-x.example", "a" * 64 + ".example", "x/../y"]:
        _refused(BadArgs, base, princeton.issue_service_gid, "am", host, public_key=public)


def test_service_gids(princeton: Authority, trusted_roots: TrustedRoots) -> None:
    am, key = princeton.issue_service_gid("am", "AM.Princeton.example.")
    assert key is not None
    assert am.subject_cn == "plc.princeton.am" and am.type == "authority+am"
    assert am.urn == "urn:publicid:IDN+plc:princeton+authority+am"
    assert not am.is_ca and am.certificate.subject != princeton.gid.certificate.subject
    san = am.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["am.princeton.example"]
    assert verify_gid_chain(am, trusted_roots).hrn == "plc"
    sa, _ = princeton.issue_service_gid("sa", "10.0.0.7", public_key=princeton.key.public_key())
    san = sa.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    assert sa.subject_cn == "plc.princeton.sa" and sa.type == "authority"


def test_service_gid_carries_exactly_the_names_chosen_by_the_caller(
        princeton: Authority, trusted_roots: TrustedRoots,
        authority_store: AuthorityStore) -> None:
    _refused(BadArgs, authority_store.base_dir, princeton.issue_service_gid, "xx", "127.0.0.1",
             names=(("localhost",), ()))
    am, key = princeton.issue_service_gid("am", "127.0.0.1",
                                          names=(("localhost",), ("127.0.0.1",)))
    assert key is not None and am.urn == "urn:publicid:IDN+plc:princeton+authority+am"
    san = am.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert verify_gid_chain(am, trusted_roots).hrn == "plc"


def test_create_root_twice_refused(plc: Authority, authority_store: AuthorityStore) -> None:
    _refused(AlreadyExists, authority_store.base_dir, authority_store.create_root, "plc")
    _refused(BadArgs, authority_store.base_dir, authority_store.create_root, "plc.x")
    _refused(BadArgs, authority_store.base_dir, authority_store.create_sub, "plc")
    _refused(SearchFailed, authority_store.base_dir, authority_store.create_sub, "zzz.sub")


def test_load_errors(tmp_path: Path, alice: Principal) -> None:
    with pytest.raises(SearchFailed):
        Authority.load(tmp_path)
    (tmp_path / GID_FILE).write_text(alice.gid.to_pem())
    (tmp_path / KEY_FILE).write_bytes(b"")
    with pytest.raises(BadArgs):
        Authority.load(tmp_path)


def test_directory_names_are_derived_safely(tmp_path: Path) -> None:
    assert authority_dir_name("princeton") == "princeton"
    assert authority_dir_name("emulab.net") == "emulab%2Enet"
    assert authority_dir_name("..") == "%2E%2E"
    assert authority_dir_name("a/b") == "a%2Fb"
    assert authority_dir_name("caf\u00e9") == "caf%C3%A9"
    store = AuthorityStore(tmp_path / "base")
    for hrn in [r"plc.\.\.", r"plc.\.\..\.\.", "plc.a/b", r"emulab\.net", "plc.%2E%2E"]:
        directory = store.directory_for(hrn)
        assert directory.resolve().is_relative_to((tmp_path / "base").resolve())
        assert all(part not in {".", ".."} for part in directory.relative_to(store.base_dir).parts)
    assert store.directory_for(r"plc.\.\.") != store.directory_for("plc.%2E%2E")


def test_tree_with_dotted_components(tmp_path: Path) -> None:
    store = AuthorityStore(tmp_path)
    root = store.create_root(r"emulab\.net")
    sub = store.create_sub(r"emulab\.net.utah\.edu")
    assert root.directory == tmp_path / "emulab%2Enet"
    assert sub.directory == tmp_path / "emulab%2Enet" / "utah%2Eedu"
    assert store.get(r"emulab\.net.utah\.edu").gid == sub.gid
    assert store.authority_for(r"emulab\.net.utah\.edu.alice").hrn == r"emulab\.net.utah\.edu"
    gid, _ = sub.issue_gid(r"emulab\.net.utah\.edu.alice", "user", public_key=sub.key.public_key())
    assert verify_gid_chain(gid, TrustedRoots(gids=[root.gid])) == root.gid
    assert store.hrns() == [r"emulab\.net", r"emulab\.net.utah\.edu"]
    assert GeniCode.SEARCHFAILED == SearchFailed.code


def test_load_refuses_a_key_that_is_not_the_authoritys(tmp_path, plc, alice) -> None:
    copy = tmp_path / "plc"
    shutil.copytree(plc.directory, copy)
    assert Authority.load(copy).gid == plc.gid
    save_private_key(copy / "authority.pkey", alice.key)
    with pytest.raises(BadArgs, match="is not the key of"):
        Authority.load(copy)
