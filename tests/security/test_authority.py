"""spec/security.md item 25 over TLS: authority (CA) certificates come only from operators, and
a removed PI (or user) keeps no credential-minting power, at the registry or the aggregate.

The sequence of the outside attack: a PI asks CreateGid for its authority with its own key
(refused); the operator removes the PI; the credentials it obtained before no longer mint user
or slice credentials at the registry, nor act at the aggregate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sfa.cli.admin import open_admin
from sfa.errors import GeniCode
from sfa.trust.gid import GID
from sfa.trust.keys import generate_private_key, public_key_to_openssh
from sfa.trust.revoked import REVOKED_FILE
from tests.security.conftest import (
    GENI3,
    World,
    ok,
    refused_by_aggregate,
    refused_by_registry,
    request,
)
from tests.server.conftest import Identity, write_identity

LAB_SA = "urn:publicid:IDN+plc:lab+authority+sa"
DSLICE = "urn:publicid:IDN+plc:lab+slice+dslice"
ONE_NODE = request('<node client_id="a" exclusive="false"/>')
REFUSED_CREDENTIAL = (GeniCode.CREDENTIAL_INVALID, GeniCode.FORBIDDEN,
                      GeniCode.CREDENTIAL_SIGNER_UNTRUSTED)


@dataclass
class Lab:
    """plc.lab with PI pi2 (and pi3), and dave's slice dslice holding one sliver."""

    pi2: Identity
    pi3: Identity
    dave: Identity
    creds: dict[str, str]


def _user(world: World, admin: Any, hrn: str) -> Identity:
    key = generate_private_key()
    new = admin.admin_add_user(hrn, pubkey=public_key_to_openssh(key))
    return write_identity(world.deployment.directory.parent / "ids",
                          hrn.rsplit(".", 1)[1], GID.from_pem(new.record.gid), key)


def _self_cred(world: World, who: Identity, hrn: str) -> str:
    return str(world.registry(identity=who).GetSelfCredential(who.gid.to_pem(), hrn, "user"))


@pytest.fixture(scope="module")
def lab(world: World) -> Iterator[Lab]:
    admin = open_admin(world.deployment)
    try:
        pi2, pi3 = _user(world, admin, "plc.pi2"), _user(world, admin, "plc.pi3")
        admin.admin_add_authority("plc.lab", pis=["plc.pi2", "plc.pi3"])
        dave = _user(world, admin, "plc.lab.dave")
        admin.admin_add_slice("plc.lab.dslice", ["plc.lab.dave"])
    finally:
        admin.close()
    creds = {"pi2": _self_cred(world, pi2, "plc.pi2"), "pi3": _self_cred(world, pi3, "plc.pi3"),
             "dave": _self_cred(world, dave, "plc.lab.dave")}
    for who, ident in (("pi2", pi2), ("pi3", pi3)):
        registry = world.registry(identity=ident)
        creds[f"{who}-lab"] = registry.GetCredential([creds[who]], "plc.lab", "authority")
        creds[f"{who}-dslice"] = registry.GetCredential([creds[who]], "plc.lab.dslice", "slice")
    creds["dave-dslice"] = world.registry(identity=dave).GetCredential(
        [creds["dave"]], "plc.lab.dslice", "slice")
    ok(world.am(identity=dave).Allocate(DSLICE, world.wrap(creds["dave-dslice"]), ONE_NODE, {}))
    yield Lab(pi2, pi3, dave, creds)
    world.am(identity=dave).Delete([DSLICE], world.wrap(creds["dave-dslice"]), {})


@pytest.mark.parametrize("authority", [LAB_SA, "urn:publicid:IDN+plc+authority+sa"])
def test_25_create_gid_for_an_authority_is_refused(world: World, lab: Lab,
                                                   authority: str) -> None:
    """The PI asks for a CA certificate for its authority (or the root) with its own key."""
    registry = world.registry(identity=lab.pi3)
    own_cert = lab.pi3.gid.to_pem()
    message = refused_by_registry(
        world, lambda: registry.CreateGid([lab.creds["pi3-lab"]], authority, own_cert),
        (GeniCode.FORBIDDEN, GeniCode.CREDENTIAL_MISMATCH))
    assert "authority" in message


def test_25_create_gid_gives_a_pi_leaf_gids_only(world: World, lab: Lab) -> None:
    """The control: a PI still gets a GID for a user it manages, and it is no CA."""
    registry = world.registry(identity=lab.pi3)
    pem = registry.CreateGid([lab.creds["pi3-lab"]], "urn:publicid:IDN+plc:lab+user+dave",
                             lab.dave.gid.to_pem())
    issued = GID.from_pem(pem)
    assert issued.urn == "urn:publicid:IDN+plc:lab+user+dave" and not issued.is_ca


def test_25_a_pi_taken_off_reg_pis_loses_its_authority_credential(world: World,
                                                                   lab: Lab) -> None:
    """pi3 is no longer PI of plc.lab (still a user): its earlier authority credential no
    longer registers, updates or removes anything there."""
    admin = open_admin(world.deployment)
    try:
        (authority,) = admin.admin_show("plc.lab", "authority")
        admin.book.update(authority, {"pis": ["plc.pi2"]})
    finally:
        admin.close()
    registry = world.registry(identity=lab.pi3)
    stale = [lab.creds["pi3-lab"]]
    newcomer = {"hrn": "plc.lab.eve", "type": "user",
                "reg-keys": [public_key_to_openssh(generate_private_key())]}
    refused_by_registry(world, lambda: registry.Register(newcomer, stale), GeniCode.FORBIDDEN)
    change = {"hrn": "plc.lab.dslice", "type": "slice", "reg-researchers": ["plc.pi3"]}
    refused_by_registry(world, lambda: registry.Update(change, stale), GeniCode.FORBIDDEN)
    refused_by_registry(world, lambda: registry.Remove(DSLICE, stale, "slice"),
                        GeniCode.FORBIDDEN)
    refused_by_registry(
        world, lambda: registry.GetCredential(stale, "plc.lab.dslice", "slice"),
        GeniCode.FORBIDDEN)


def test_25_a_removed_pi_keeps_no_way_back(world: World, lab: Lab) -> None:
    """After `sfa admin DIR remove plc.pi2`, nothing pi2 obtained before works anywhere."""
    before_removal = world.dump()
    admin = open_admin(world.deployment)
    try:
        admin.admin_remove("plc.pi2")
    finally:
        admin.close()
    revoked = (world.deployment.trusted_roots_dir / REVOKED_FILE).read_text()
    assert "plc.pi2" in revoked
    assert world.dump() != before_removal  # the record went and the key was revoked
    registry, am = world.registry(identity=lab.pi2), world.am(identity=lab.pi2)
    auth, own = [lab.creds["pi2-lab"]], [lab.creds["pi2"]]
    # no user or slice credential from the authority credential or the user credential
    messages = [
        refused_by_registry(world, lambda: registry.GetCredential(auth, "plc.lab.dslice",
                                                                  "slice"), REFUSED_CREDENTIAL),
        refused_by_registry(world, lambda: registry.GetCredential(auth, "plc.lab.dave", "user"),
                            REFUSED_CREDENTIAL),
        refused_by_registry(world, lambda: registry.GetCredential(own, "plc.pi2", "user"),
                            REFUSED_CREDENTIAL),
    ]
    newcomer = {"hrn": "plc.lab.mallory", "type": "user",
                "reg-keys": [public_key_to_openssh(generate_private_key().public_key())]}
    messages.append(refused_by_registry(world, lambda: registry.Register(newcomer, auth),
                                        REFUSED_CREDENTIAL))
    refused_by_registry(
        world, lambda: registry.GetSelfCredential(lab.pi2.gid.to_pem(), "plc.pi2", "user"),
        (GeniCode.SEARCHFAILED, *REFUSED_CREDENTIAL))
    # and its slice credential, obtained as PI, no longer acts on dave's slivers
    slice_cred = world.wrap(lab.creds["pi2-dslice"])
    for call in (lambda: am.Delete([DSLICE], slice_cred, {}),
                 lambda: am.Describe([DSLICE], slice_cred, {"geni_rspec_version": GENI3}),
                 lambda: am.Shutdown(DSLICE, slice_cred, {})):
        messages.append(refused_by_aggregate(world, call, REFUSED_CREDENTIAL))
    assert all("revoked" in message for message in messages), messages
    # dave, untouched, still works
    described = world.am(identity=lab.dave).Describe(
        [DSLICE], world.wrap(lab.creds["dave-dslice"]), {"geni_rspec_version": GENI3})
    assert len(ok(described)["geni_slivers"]) == 1


def test_25_the_removed_pi_cannot_come_back_through_another_certificate(world: World,
                                                                        lab: Lab) -> None:
    """Any certificate for the revoked key is refused, whoever issued it: here a GID for it
    signed anew by plc.lab (what CreateGid handed out before) used as the TLS identity."""
    admin = open_admin(world.deployment)
    try:
        if admin.book.repository.get("plc.pi2", "user") is not None:
            admin.admin_remove("plc.pi2")
    finally:
        admin.close()
    lab_authority = world.deployment.authority_store().get("plc.lab")
    copy, _ = lab_authority.issue_gid("plc.lab.pi2copy", "user", lab.pi2.key.public_key())
    twin = write_identity(world.deployment.directory.parent / "ids", "pi2copy", copy, lab.pi2.key)
    output = refused_by_aggregate(
        world, lambda: world.am(identity=twin).ListResources(
            world.wrap(lab.creds["pi2"]), {"geni_rspec_version": GENI3}),
        REFUSED_CREDENTIAL)
    assert "revoked" in output


def test_10_update_with_another_users_key_is_alreadyexists(world: World) -> None:
    """alice cannot take bob's public key (her GID would then let bob act as her): the
    registry cannot ask for proof of possession, so it refuses a key someone else holds."""
    bob_key = public_key_to_openssh(world.ids["bob"].key.public_key())
    change = {"hrn": "plc.alice", "type": "user", "reg-keys": [bob_key]}
    message = refused_by_registry(
        world, lambda: world.registry("alice").Update(change, [world.creds["alice"]]),
        GeniCode.ALREADYEXISTS)
    assert "plc.bob" in message
