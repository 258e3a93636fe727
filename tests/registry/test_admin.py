"""The operator API: no credentials, every validation; refusals change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sfa.errors import AlreadyExists, BadArgs, MissingArgs, Refused, SearchFailed
from sfa.registry.admin import RegistryAdmin
from sfa.registry.records import AuthorityRecord, SliceRecord, UserRecord
from sfa.timeutil import utcnow
from sfa.trust.chain import verify_gid_chain
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_to_openssh, public_key_to_pem, public_keys_equal
from tests.registry.conftest import World


def test_add_user_makes_key_when_none_given(world: World) -> None:
    new = world.admin.admin_add_user("plc.princeton.eve", email="eve@x.example",
                                     pi_of=["plc.princeton"])
    assert new.private_key is not None
    gid = GID.from_pem(new.record.gid or "")
    assert public_keys_equal(gid.public_key, new.private_key.public_key())
    assert gid.email == "eve@x.example"
    verify_gid_chain(gid, world.roots)
    assert new.record.pi_authorities == ["plc.princeton"]
    (princeton,) = world.admin.admin_show("plc.princeton", "authority")
    assert isinstance(princeton, AuthorityRecord)
    assert princeton.pis == ["plc.princeton.carol", "plc.princeton.eve"]


def test_add_user_with_pem_key_stores_ssh_line(world: World) -> None:
    pem = public_key_to_pem(world.keys["spare"].public_key()).decode()
    new = world.admin.admin_add_user("plc.princeton.eve", pubkey=pem)
    assert new.private_key is None
    assert new.record.keys == [public_key_to_openssh(world.keys["spare"])]


def test_add_slice_and_authority(world: World) -> None:
    expires = utcnow() + timedelta(days=3)
    sl = world.admin.admin_add_slice("plc.other.lab", ["plc.other.dave"], expires=expires)
    assert isinstance(sl, SliceRecord) and sl.expires == expires.replace(microsecond=0)
    auth = world.admin.admin_add_authority("plc.other.sub", pis=["plc.other.dave"])
    assert GID.from_pem(auth.gid or "").is_ca
    assert world.authorities.get("plc.other.sub").hrn == "plc.other.sub"


def test_list_show_remove(world: World) -> None:
    listed = {r.hrn for r in world.admin.admin_list()}
    assert {"plc.princeton.alice", "plc.other.dave", "plc.princeton"} <= listed
    assert {r.hrn for r in world.admin.admin_list("plc.other", recursive=False)} == {
        "plc.other.dave"
    }
    (bob,) = world.admin.admin_show("plc.princeton.bob")
    assert isinstance(bob, UserRecord) and bob.email == "bob@princeton.example"
    removed = world.admin.admin_remove("plc.princeton.bob")
    assert removed.hrn == "plc.princeton.bob"
    with pytest.raises(SearchFailed, match=r"plc\.princeton\.bob"):
        world.admin.admin_show("plc.princeton.bob")


def test_admin_refusals_change_nothing(world: World) -> None:
    before, files = world.dump(), world.authority_dirs()
    key = public_key_to_openssh(world.keys["spare"])
    cases = [
        (AlreadyExists, lambda: world.admin.admin_add_user("plc.princeton.alice", pubkey=key)),
        (BadArgs, lambda: world.admin.admin_add_user("plc.princeton.9bad", pubkey=key)),
        (BadArgs, lambda: world.admin.admin_add_user("ple.x.joe", pubkey=key)),
        (BadArgs, lambda: world.admin.admin_add_user("plc.princeton.eve", pubkey="garbage")),
        (SearchFailed, lambda: world.admin.admin_add_user("plc.princeton.eve", pubkey=key,
                                                          pi_of=["plc.nowhere"])),
        (SearchFailed, lambda: world.admin.admin_add_slice("plc.nowhere.s", ["plc.other.dave"])),
        (BadArgs, lambda: world.admin.admin_add_slice("plc.princeton.s", [])),
        (SearchFailed, lambda: world.admin.admin_add_slice("plc.princeton.s", ["plc.x.nobody"])),
        (AlreadyExists, lambda: world.admin.admin_add_authority("plc.princeton")),
        (Refused, lambda: world.admin.admin_remove("plc.princeton")),
        (Refused, lambda: world.admin.admin_remove("plc")),
        (SearchFailed, lambda: world.admin.admin_remove("plc.princeton.zed")),
        (SearchFailed, lambda: world.admin.admin_show("plc.princeton.zed")),
    ]
    for error, call in cases:
        with pytest.raises(error):
            call()
        assert world.dump() == before, error
        assert world.authority_dirs() == files
    with pytest.raises(MissingArgs):
        world.admin.book.update(world.admin.admin_show("plc.princeton.alice")[0], {"keys": []})
    assert world.dump() == before


def test_ambiguous_remove_needs_type(world: World) -> None:
    world.admin.admin_add_slice("plc.princeton.alice", ["plc.princeton.alice"])
    with pytest.raises(BadArgs, match="several records"):
        world.admin.admin_remove("plc.princeton.alice")
    world.admin.admin_remove("plc.princeton.alice", "slice")
    assert [r.type for r in world.admin.admin_show("plc.princeton.alice")] == ["user"]


def test_second_process_view_sees_same_file(world: World) -> None:
    """The CLI opens its own RegistryAdmin on the file the server uses."""
    other = RegistryAdmin(world.db_path, world.authorities, "plc")
    try:
        other.admin_add_slice("plc.princeton.exp7", ["plc.princeton.bob"])
        assert world.admin.admin_show("plc.princeton.exp7", "slice")
        assert world.cred("bob", "plc.princeton.exp7", "slice")
    finally:
        other.close()
