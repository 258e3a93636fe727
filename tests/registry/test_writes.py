"""Register, Update, Remove and CreateGid through the door: who may, what is valid, and that
every refusal (security.md 7 and 10) leaves the database and the key directories unchanged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from sfa.errors import (
    AlreadyExists,
    BadArgs,
    CredentialMismatch,
    Forbidden,
    MissingArgs,
    Refused,
    SearchFailed,
    SfaError,
)
from sfa.timeutil import format_rfc3339, utcnow
from sfa.trust.chain import verify_gid_chain
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_to_openssh, public_keys_equal
from tests.registry.conftest import World


def assert_refused(
    world: World, error: type[SfaError], call: Callable[[], Any], match: str | None = None
) -> SfaError:
    """The call raises `error` (with its GENI code) and nothing in the database or the
    authority directories changed."""
    before, files = world.dump(), world.authority_dirs()
    with pytest.raises(error, match=match) as info:
        call()
    assert info.value.code == error.code
    assert world.dump() == before
    assert world.authority_dirs() == files
    return info.value


def _slice(hrn: str, **extra: Any) -> dict[str, Any]:
    return {"hrn": hrn, "type": "slice", "reg-researchers": ["plc.princeton.alice"], **extra}


# --- Register -----------------------------------------------------------------------------
def test_pi_registers_user_with_public_key_only(world: World) -> None:
    carol_auth = world.cred("carol", "plc.princeton", "authority")
    pem = world.registry.Register(
        world.gid("carol"),
        {"hrn": "plc.princeton.eve", "type": "user", "keys": public_key_to_openssh(
            world.keys["spare"]), "email": "eve@princeton.example"},
        [carol_auth],
    )
    assert "PRIVATE" not in pem
    gid = GID.from_pem(pem)
    assert gid.urn == "urn:publicid:IDN+plc:princeton+user+eve"
    assert public_keys_equal(gid.public_key, world.keys["spare"].public_key())
    verify_gid_chain(gid, world.roots)
    (record,) = world.admin.admin_show("plc.princeton.eve", "user")
    assert record.gid == pem


def test_user_without_key_is_refused(world: World) -> None:
    cred = world.cred("carol", "plc.princeton", "authority")
    assert_refused(world, MissingArgs, lambda: world.registry.Register(
        world.gid("carol"), {"hrn": "plc.princeton.eve", "type": "user"}, [cred]
    ), "public key")


def test_supplied_gid_is_refused_in_register_and_update(world: World) -> None:
    """security.md 10: a caller supplying its own gid field."""
    cred = world.cred("carol", "plc.princeton", "authority")
    own = world.gid("carol").to_pem()
    record = {"hrn": "plc.princeton.eve", "type": "user", "gid": own,
              "reg-keys": [public_key_to_openssh(world.keys["carol"])]}
    assert_refused(world, Forbidden, lambda: world.registry.Register(
        world.gid("carol"), record, [cred]), "issues GIDs itself")
    alice_cred = world.user_cred("alice")
    assert_refused(world, Forbidden, lambda: world.registry.Update(
        world.gid("alice"), {"hrn": "plc.princeton.alice", "type": "user", "gid": own},
        [alice_cred]))


def test_registering_under_an_authority_one_is_not_pi_of(world: World) -> None:
    """security.md 10: dave is PI of plc.other, not of plc.princeton; alice is PI of nothing."""
    dave_auth = world.cred("dave", "plc.other", "authority")
    assert_refused(world, CredentialMismatch, lambda: world.registry.Register(
        world.gid("dave"), _slice("plc.princeton.dave1"), [dave_auth]))
    alice_user = world.user_cred("alice")
    assert_refused(world, CredentialMismatch, lambda: world.registry.Register(
        world.gid("alice"), _slice("plc.princeton.mine"), [alice_user]))
    alice_slice = world.cred("alice", "plc.princeton.exp1", "slice")
    assert_refused(world, CredentialMismatch, lambda: world.registry.Register(
        world.gid("alice"), _slice("plc.princeton.mine"), [alice_slice]))


def test_stolen_authority_credential_cannot_register(world: World) -> None:
    carol_auth = world.cred("carol", "plc.princeton", "authority")
    assert_refused(world, CredentialMismatch, lambda: world.registry.Register(
        world.gid("bob"), _slice("plc.princeton.stolen"), [carol_auth]))


def test_register_slice_default_and_capped_expiry(world: World) -> None:
    cred = world.cred("carol", "plc.princeton", "authority")
    now = utcnow()
    world.registry.Register(world.gid("carol"), _slice("plc.princeton.s1"), [cred])
    far = format_rfc3339(now + timedelta(days=400))
    world.registry.Register(
        world.gid("carol"),
        {"hrn": "plc.princeton.s2", "type": "slice", "researcher": "plc.princeton.bob",
         "expires": far},
        [cred],
    )
    (s1,) = world.admin.admin_show("plc.princeton.s1", "slice")
    (s2,) = world.admin.admin_show("plc.princeton.s2", "slice")
    assert abs(s1.expires - (now + timedelta(days=30))) < timedelta(seconds=5)  # type: ignore[attr-defined]
    assert abs(s2.expires - (now + timedelta(days=180))) < timedelta(seconds=5)  # type: ignore[attr-defined]
    assert s2.researchers == ["plc.princeton.bob"]  # type: ignore[attr-defined]
    # the researcher can now get the slice credential
    assert world.cred("bob", "plc.princeton.s2", "slice")


def test_register_refusals_change_nothing(world: World) -> None:
    cred = world.cred("carol", "plc.princeton", "authority")
    carol = world.gid("carol")
    cases: list[tuple[type[SfaError], dict[str, Any]]] = [
        (AlreadyExists, _slice("plc.princeton.exp1")),
        (BadArgs, _slice("plc.princeton.this-name-is-far-too-long")),
        (BadArgs, _slice("plc.princeton.s1", expires="2001-01-01T00:00:00Z")),
        (BadArgs, _slice("plc.princeton.s1", expires="next tuesday")),
        (SearchFailed, {"hrn": "plc.princeton.s1", "type": "slice",
                        "reg-researchers": ["plc.princeton.nobody"]}),
        (BadArgs, {"hrn": "plc.princeton.s1", "type": "sliver"}),
        (BadArgs, {"hrn": "plc.princeton.x", "type": "user", "reg-keys": ["not a key"]}),
        (MissingArgs, {"type": "slice"}),
    ]
    for error, record in cases:

        def register(r: dict[str, Any] = record) -> str:
            return world.registry.Register(carol, r, [cred])

        assert_refused(world, error, register)


def test_register_under_missing_authority_or_peer(world: World) -> None:
    admin_cred = world.cred("admin", "plc", "authority")
    admin = world.gid("admin")
    assert_refused(world, SearchFailed, lambda: world.registry.Register(
        admin, _slice("plc.nowhere.s1"), [admin_cred]), "register it before")
    assert_refused(world, SearchFailed, lambda: world.registry.Register(
        admin, _slice("plc.remote.s1"), [admin_cred]), "remote.example")


def test_register_sub_authority_creates_its_key(world: World) -> None:
    admin_cred = world.cred("admin", "plc", "authority")
    pem = world.registry.Register(
        world.gid("admin"),
        {"hrn": "plc.princeton.cs", "type": "authority", "reg-pis": ["plc.princeton.bob"]},
        [admin_cred],
    )
    gid = GID.from_pem(pem)
    assert gid.is_ca and gid.urn == "urn:publicid:IDN+plc:princeton:cs+authority+sa"
    verify_gid_chain(gid, world.roots)
    assert world.authorities.get("plc.princeton.cs").gid.fingerprint == gid.fingerprint
    # bob is now PI of it and may register beneath it
    bob_auth = world.cred("bob", "plc.princeton.cs", "authority")
    world.registry.Register(world.gid("bob"), _slice("plc.princeton.cs.lab"), [bob_auth])
    assert world.admin.admin_show("plc.princeton.cs.lab", "slice")


# --- Update -------------------------------------------------------------------------------
def test_user_updates_own_key_and_gid_is_reissued(world: World) -> None:
    old = world.gid("alice")
    cred = world.user_cred("alice")
    new_key = public_key_to_openssh(world.keys["spare"])
    assert world.registry.Update(
        old, {"hrn": "plc.princeton.alice", "type": "user", "reg-keys": [new_key]}, [cred]
    ) == 1
    new = world.gid("alice")
    assert public_keys_equal(new.public_key, world.keys["spare"].public_key())
    assert new.uuid == old.uuid and new.fingerprint != old.fingerprint
    # the old key no longer bootstraps
    with pytest.raises(CredentialMismatch):
        world.registry.GetSelfCredential(old, None, old.urn, "user")


def test_update_of_another_record_is_refused(world: World) -> None:
    """security.md 7: alice's user credential used on bob's record and on a slice."""
    cred = world.user_cred("alice")
    assert_refused(world, CredentialMismatch, lambda: world.registry.Update(
        world.gid("alice"), {"hrn": "plc.princeton.bob", "type": "user", "email": "x@y"}, [cred]))
    assert_refused(world, CredentialMismatch, lambda: world.registry.Update(
        world.gid("alice"),
        {"hrn": "plc.princeton.exp1", "type": "slice", "description": "mine"}, [cred]))


def test_slice_credential_used_on_another_slice(world: World) -> None:
    world.admin.admin_add_slice("plc.princeton.exp2", ["plc.princeton.alice"])
    exp1 = world.cred("alice", "plc.princeton.exp1", "slice")
    assert_refused(world, CredentialMismatch, lambda: world.registry.Update(
        world.gid("alice"), {"hrn": "plc.princeton.exp2", "type": "slice", "url": "http://x"},
        [exp1]))


def test_researcher_extends_slice_up_to_the_maximum(world: World) -> None:
    cred = world.cred("alice", "plc.princeton.exp1", "slice")
    far = format_rfc3339(utcnow() + timedelta(days=365))
    world.registry.Update(
        world.gid("alice"), {"hrn": "plc.princeton.exp1", "type": "slice", "expires": far},
        [cred],
    )
    (record,) = world.admin.admin_show("plc.princeton.exp1", "slice")
    limit = utcnow() + timedelta(days=180)
    assert limit - timedelta(seconds=5) <= record.expires <= limit  # type: ignore[attr-defined]
    slice_gid = GID.from_pem(record.gid or "")
    assert slice_gid.not_after >= record.expires  # type: ignore[attr-defined]


def test_pi_changes_researchers(world: World) -> None:
    cred = world.cred("carol", "plc.princeton", "authority")
    with pytest.raises(Forbidden):
        world.cred("bob", "plc.princeton.exp1", "slice")
    world.registry.Update(
        world.gid("carol"),
        {"hrn": "plc.princeton.exp1", "type": "slice",
         "reg-researchers": ["plc.princeton.alice", "urn:publicid:IDN+plc:princeton+user+bob"]},
        [cred],
    )
    assert world.cred("bob", "plc.princeton.exp1", "slice")


def test_user_cannot_make_self_pi(world: World) -> None:
    """security.md 10: refresh on one's own record does not reach the authority's PI list."""
    cred = world.user_cred("alice")
    assert_refused(world, CredentialMismatch, lambda: world.registry.Update(
        world.gid("alice"),
        {"hrn": "plc.princeton", "type": "authority", "reg-pis": ["plc.princeton.alice"]},
        [cred]))
    # reg-pi-authorities on the user record is computed, never written
    world.registry.Update(
        world.gid("alice"),
        {"hrn": "plc.princeton.alice", "type": "user", "reg-pi-authorities": ["plc.princeton"]},
        [cred],
    )
    with pytest.raises(Forbidden):
        world.cred("alice", "plc.princeton", "authority")


# --- Remove -------------------------------------------------------------------------------
def test_remove_slice_with_slivers_needs_force(make_world: Any) -> None:
    live = {"urn:publicid:IDN+plc:princeton+slice+exp1"}
    world: World = make_world(slice_has_slivers=lambda urn: urn in live)
    cred = world.cred("alice", "plc.princeton.exp1", "slice")
    assert_refused(world, Refused, lambda: world.registry.Remove(
        world.gid("alice"), "plc.princeton.exp1", [cred], "slice"), "slivers")
    assert world.registry.Remove(
        world.gid("alice"), "plc.princeton.exp1", [cred], "slice", force=True
    ) == 1
    with pytest.raises(SearchFailed):
        world.admin.admin_show("plc.princeton.exp1", "slice")
    assert world.admin.admin_show("plc.princeton.alice", "user")[0].slices == []  # type: ignore[attr-defined]


def test_remove_refusals(world: World) -> None:
    alice = world.user_cred("alice")
    assert_refused(world, CredentialMismatch, lambda: world.registry.Remove(
        world.gid("alice"), "plc.princeton.bob", [alice], "user"))
    assert_refused(world, CredentialMismatch, lambda: world.registry.Remove(
        world.gid("alice"), "plc.princeton", [alice], "authority"))
    # a slice credential names the slice but grants no 'remove' on the node next to it
    exp1 = world.cred("alice", "plc.princeton.exp1", "slice")
    assert_refused(world, CredentialMismatch, lambda: world.registry.Remove(
        world.gid("alice"), "plc.princeton.node1", [exp1], "node"))
    admin = world.cred("admin", "plc", "authority")
    assert_refused(world, Refused, lambda: world.registry.Remove(
        world.gid("admin"), "plc.princeton", [admin], "authority"), "remove them first")
    assert_refused(world, Refused, lambda: world.registry.Remove(
        world.gid("admin"), "plc", [admin], "authority"), "root")
    assert_refused(world, SearchFailed, lambda: world.registry.Remove(
        world.gid("admin"), "plc.princeton.nobody", [admin], "user"))


def test_pi_removes_user_and_relations_go(world: World) -> None:
    cred = world.cred("carol", "plc.princeton", "authority")
    world.registry.Remove(world.gid("carol"), "urn:publicid:IDN+plc:princeton+user+alice", [cred])
    (exp1,) = world.admin.admin_show("plc.princeton.exp1", "slice")
    assert exp1.researchers == []  # type: ignore[attr-defined]
    assert not [k for k in world.dump()["user_keys"] if k["key"] == public_key_to_openssh(
        world.keys["alice"])]


def test_remove_empty_sub_authority_removes_its_key(world: World) -> None:
    admin = world.cred("admin", "plc", "authority")
    world.registry.Register(
        world.gid("admin"), {"hrn": "plc.tmp", "type": "authority"}, [admin]
    )
    directory = world.authorities.directory_for("plc.tmp")
    assert directory.is_dir()
    world.registry.Remove(world.gid("admin"), "plc.tmp", [admin], "authority")
    assert not directory.exists()


# --- CreateGid ----------------------------------------------------------------------------
def test_create_gid_for_own_record_with_new_key(world: World) -> None:
    cred = world.user_cred("alice")
    spare = world.keys["spare"]
    pem = world.registry.CreateGid(
        world.gid("alice"), [cred], "plc.princeton.alice", public_key_to_openssh(spare)
    )
    gid = GID.from_pem(pem)
    assert gid.urn == world.gid("alice").urn and gid.uuid == world.gid("alice").uuid
    assert public_keys_equal(gid.public_key, spare.public_key())
    verify_gid_chain(gid, world.roots)
    assert_refused(world, CredentialMismatch, lambda: world.registry.CreateGid(
        world.gid("alice"), [cred], "plc.princeton.bob", public_key_to_openssh(spare)))
