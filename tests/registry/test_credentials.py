"""GetSelfCredential and GetCredential: the bootstrap and every rule of who gets which rights
(`spec/trust.md`), with the refusals of security.md 6 and 10 leaving the database unchanged."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sfa.errors import BadArgs, CredentialMismatch, Expired, Forbidden, GeniCode, SearchFailed
from sfa.registry.settings import RegistryConfig
from sfa.timeutil import utcnow
from sfa.trust.credential import parse_credential
from sfa.trust.gid import GID
from sfa.trust.keys import public_key_to_openssh, public_keys_equal
from sfa.trust.verify import verify_credential
from tests.registry.conftest import PEERS, World


def _rights(world: World, xml: str) -> set[str]:
    return {p.name for p in verify_credential(xml, world.policy).privileges}


def test_bootstrap_self_signed_to_slice_credential(world: World) -> None:
    """sfi's path: self-signed cert -> GetSelfCredential -> Resolve -> real GID ->
    GetCredential for a slice."""
    bootstrap = world.self_signed("alice", "plc.princeton.alice")
    assert bootstrap.is_self_signed
    user_cred = world.registry.GetSelfCredential(
        bootstrap, bootstrap.to_pem(), "plc.princeton.alice", "user"
    )
    cred = verify_credential(user_cred, world.policy)
    assert cred.owner_urn == cred.target_urn == "urn:publicid:IDN+plc:princeton+user+alice"
    assert {p.name for p in cred.privileges} == {"refresh", "resolve", "info"}
    (record,) = world.registry.Resolve(bootstrap, "plc.princeton.alice", [user_cred])
    real_gid = GID.from_pem(record["gid"])
    assert public_keys_equal(real_gid.public_key, world.keys["alice"].public_key())
    slice_xml = world.registry.GetCredential(
        real_gid, [user_cred], "urn:publicid:IDN+plc:princeton+slice+exp1", None
    )
    slice_cred = verify_credential(slice_xml, world.policy)
    assert slice_cred.target_urn == "urn:publicid:IDN+plc:princeton+slice+exp1"
    assert slice_cred.owner_urn == real_gid.urn
    assert {p.name for p in slice_cred.privileges} == {
        "refresh", "embed", "bind", "control", "info",
    }
    (slice_record,) = world.admin.admin_show("plc.princeton.exp1", "slice")
    assert slice_cred.expires <= slice_record.expires  # type: ignore[attr-defined]
    assert slice_cred.expires <= real_gid.not_after


def test_self_credential_refused_for_someone_elses_key(world: World) -> None:
    before = world.dump()
    mallory = world.self_signed("mallory", "plc.princeton.alice")
    with pytest.raises(CredentialMismatch) as info:
        world.registry.GetSelfCredential(mallory, None, "plc.princeton.alice", "user")
    assert info.value.code == GeniCode.CREDENTIAL_MISMATCH
    assert world.dump() == before


def test_self_credential_refused_when_cert_argument_is_not_the_tls_cert(world: World) -> None:
    alice = world.gid("alice")
    other = world.self_signed("mallory", "plc.princeton.alice")
    with pytest.raises(CredentialMismatch):
        world.registry.GetSelfCredential(alice, other.to_pem(), alice.urn, "user")


def test_self_credential_for_unknown_or_foreign_name(world: World) -> None:
    alice = world.gid("alice")
    with pytest.raises(SearchFailed, match="no user record"):
        world.registry.GetSelfCredential(alice, None, "plc.princeton.zed", "user")
    with pytest.raises(SearchFailed, match=r"https://ple\.example"):
        world.registry.GetSelfCredential(alice, None, "ple.inria.joe", "user")


def test_user_credential_refresh_only_for_self(world: World) -> None:
    """security.md 10: GetCredential for another user's record gives no refresh."""
    own = world.cred("alice", "plc.princeton.alice", "user")
    assert _rights(world, own) == {"refresh", "resolve", "info"}
    before = world.dump()
    other = world.cred("alice", "plc.princeton.bob", "user")
    assert _rights(world, other) == {"resolve", "info"}
    assert parse_credential(other).owner_urn == world.gid("alice").urn
    assert world.dump() == before


def test_slice_credential_for_researchers_and_pis_only(world: World) -> None:
    assert _rights(world, world.cred("alice", "plc.princeton.exp1", "slice")) >= {"control"}
    assert _rights(world, world.cred("carol", "plc.princeton.exp1", "slice")) >= {"embed"}
    assert _rights(world, world.cred("admin", "plc.princeton.exp1", "slice")) >= {"bind"}
    before = world.dump()
    for outsider in ("bob", "dave"):
        with pytest.raises(Forbidden, match="researchers"):
            world.cred(outsider, "plc.princeton.exp1", "slice")
    assert world.dump() == before


def test_authority_credential_for_pis_only(world: World) -> None:
    assert _rights(world, world.cred("carol", "plc.princeton", "authority")) == {"authority", "sa"}
    assert _rights(world, world.cred("admin", "plc.princeton", "authority")) == {"authority", "sa"}
    assert _rights(world, world.cred("admin", "plc", "authority")) == {"authority", "sa", "ma"}
    for outsider, target in [("alice", "plc.princeton"), ("dave", "plc.princeton"),
                             ("carol", "plc")]:
        with pytest.raises(Forbidden, match="only PIs"):
            world.cred(outsider, target, "authority")


def test_node_credential_for_pis_of_its_authority(world: World) -> None:
    assert _rights(world, world.cred("carol", "plc.princeton.node1", "node")) == {"operator"}
    with pytest.raises(Forbidden):
        world.cred("alice", "plc.princeton.node1", "node")


def test_stolen_credential_is_refused(world: World) -> None:
    """security.md 6: alice's valid credential presented by bob over TLS."""
    alice_cred = world.user_cred("alice")
    before = world.dump()
    with pytest.raises(CredentialMismatch) as info:
        world.registry.GetCredential(world.gid("bob"), [alice_cred], "plc.princeton.exp1", "slice")
    assert info.value.code == GeniCode.CREDENTIAL_MISMATCH
    with pytest.raises(CredentialMismatch):
        world.registry.Resolve(world.gid("bob"), "plc.princeton.alice", [alice_cred])
    assert world.dump() == before


def test_credential_expiry_is_capped_by_slice_and_config(make_world: object) -> None:
    world: World = make_world(  # type: ignore[operator]
        config=RegistryConfig(credential_lifetime=timedelta(days=2), peers=PEERS)
    )
    before = utcnow()
    user = verify_credential(world.user_cred("alice"), world.policy)
    assert before + timedelta(days=2) - timedelta(seconds=2) <= user.expires
    assert user.expires <= utcnow() + timedelta(days=2)
    soon = utcnow() + timedelta(hours=3)
    world.admin.book.update(
        world.admin.admin_show("plc.princeton.exp1", "slice")[0], {"expires": soon}
    )
    slice_cred = verify_credential(
        world.cred("alice", "plc.princeton.exp1", "slice"), world.policy
    )
    assert slice_cred.expires <= soon


def test_expired_slice_gets_no_credential(world: World) -> None:
    (record,) = world.admin.admin_show("plc.princeton.exp1", "slice")
    past = (utcnow() - timedelta(minutes=1)).replace(microsecond=0)
    world.registry.book.repository.update(record, {"expires": past})
    with pytest.raises(Expired, match="extend it"):
        world.cred("alice", "plc.princeton.exp1", "slice")


def test_stale_gid_after_rekey_loses_standing(world: World) -> None:
    """A PI who re-keys: the old GID (still chain-valid) gets no PI rights any more."""
    old_gid = world.gid("carol")
    old_cred = world.user_cred("carol")
    carol = world.admin.admin_show("plc.princeton.carol", "user")[0]
    world.admin.book.update(carol, {"keys": [public_key_to_openssh(world.keys["spare"])]})
    with pytest.raises(Forbidden):
        world.registry.GetCredential(old_gid, [old_cred], "plc.princeton.exp1", "slice")


def test_credential_for_ambiguous_hrn_needs_a_type(world: World) -> None:
    world.admin.admin_add_slice("plc.princeton.alice", ["plc.princeton.alice"])
    with pytest.raises(BadArgs, match="several records"):
        world.registry.GetCredential(
            world.gid("alice"), [world.user_cred("alice")], "plc.princeton.alice", None
        )
