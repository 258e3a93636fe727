"""spec/security.md items 1-5, 8, 9, 11, 12 sent over TLS to the registry (Update of a slice)
and the aggregate (Allocate on the slice): each refused with its GENI code, nothing changed."""

from __future__ import annotations

import re
import xmlrpc.client
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sfa.errors import GeniCode
from sfa.timeutil import utcnow
from sfa.trust.credential import Credential, Privilege, parse_credential
from sfa.trust.gid import GID, create_gid
from sfa.trust.hazmat import assemble_credential
from sfa.trust.hierarchy import Authority
from sfa.trust.keys import generate_private_key
from sfa.trust.speaksfor import create_speaksfor
from sfa.trust.xmldsig import XML_ID
from tests.security.conftest import (
    World,
    refused_by_aggregate,
    refused_by_registry,
    request,
    slice_urn,
)
from tests.trust._credkit import (
    DS,
    abac,
    certs_of,
    future,
    issue,
    put_key_value_first,
    resign,
    text,
    tree,
)
from tests.trust.conftest import forge_gid

EXP1 = slice_urn("exp1")
CHANGE = {"hrn": "plc.princeton.exp1", "type": "slice", "description": "taken over"}


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return generate_private_key()


@pytest.fixture(scope="module")
def root(world: World) -> Authority:
    return world.deployment.root_authority()


@pytest.fixture(scope="module")
def genuine(world: World) -> Credential:
    """alice's slice credential for exp1, as the registry issued it."""
    return parse_credential(world.creds["exp1"])


def refused_everywhere(world: World, creds: list[Any], code: GeniCode,
                       who: str = "alice", options: dict | None = None) -> None:
    """Allocate at the aggregate and Update at the registry with `creds`: both refused."""
    am, registry = world.am(who), world.registry(who)
    refused_by_aggregate(world, lambda: am.Allocate(
        EXP1, creds, request('<node client_id="x"/>'), options or {}), code)
    refused_by_registry(world, lambda: registry.Update(CHANGE, creds), code)



# 1. Foreign key, borrowed certificate ---------------------------------------------------------

def test_1_foreign_key_with_the_authority_certificate(world: World, genuine: Credential,
                                                      root: Authority, attacker_key) -> None:
    forged = resign(genuine.xml, genuine.xml_id, attacker_key, certs_of(root.gid))
    refused_everywhere(world, world.wrap(forged), GeniCode.CREDENTIAL_INVALID)


def test_1_key_value_placed_before_the_certificate(world: World, genuine: Credential,
                                                  root: Authority, attacker_key) -> None:
    document = tree(resign(genuine.xml, genuine.xml_id, attacker_key, certs_of(root.gid)))
    put_key_value_first(document, attacker_key)
    refused_everywhere(world, world.wrap(text(document)), GeniCode.CREDENTIAL_INVALID)


# 2. Self-signed signer ------------------------------------------------------------------------

def test_2_self_signed_signer(world: World, genuine: Credential) -> None:
    key = generate_private_key()
    fake_root = create_gid(urn="urn:publicid:IDN+plc+authority+sa",
                           public_key=key.public_key(), issuer_key=key, is_ca=True)
    forged = assemble_credential(owner=genuine.owner_gid, target=genuine.target_gid,
                                 privileges=[Privilege("*")], expires=future(),
                                 signer_key=key, signer=fake_root)
    refused_everywhere(world, world.wrap(forged.xml), GeniCode.CREDENTIAL_SIGNER_UNTRUSTED)


# 3. Signature wrapping ------------------------------------------------------------------------

def test_3_unsigned_wrapper_around_the_signed_credential(world: World,
                                                        genuine: Credential) -> None:
    bob = world.ids["bob"].gid
    document = tree(genuine.xml)
    signed = document.find("credential")
    wrapper = etree.Element("credential")
    wrapper.set(XML_ID, "wrap")
    for child in signed:
        wrapper.append(etree.fromstring(etree.tostring(child)))
    wrapper.find("owner_urn").text = bob.urn
    wrapper.find("owner_gid").text = bob.to_pem()
    etree.SubElement(wrapper, "parent").append(signed)
    document.insert(0, wrapper)
    refused_everywhere(world, world.wrap(text(document)), GeniCode.CREDENTIAL_INVALID, "bob")


def test_3_duplicate_xml_id(world: World, genuine: Credential) -> None:
    document = tree(genuine.xml)
    double = etree.fromstring(etree.tostring(document.find("credential")))
    double.find("owner_urn").text = world.ids["bob"].gid.urn
    document.find(f"signatures/{DS}Signature").append(double)
    refused_everywhere(world, world.wrap(text(document)), GeniCode.CREDENTIAL_INVALID)


def test_3_reference_to_another_element(world: World, genuine: Credential) -> None:
    document = tree(genuine.xml)
    document.find(f"signatures/{DS}Signature//{DS}Reference").set("URI", "#decoy")
    refused_everywhere(world, world.wrap(text(document)), GeniCode.CREDENTIAL_INVALID)


# 4. Tampered content --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [
        (r"<name>info</name>", "<name>pi</name>"),
        (r"<expires>[^<]*</expires>", "<expires>2099-01-01T00:00:00Z</expires>"),
        (r"<target_urn>[^<]*</target_urn>",
         "<target_urn>urn:publicid:IDN+plc:princeton+slice+exp2</target_urn>"),
        (r"<owner_urn>[^<]*</owner_urn>",
         "<owner_urn>urn:publicid:IDN+plc+user+bob</owner_urn>"),
        (r"<uuid>", "<extra>1</extra><uuid>"),
        (r"xsi:noNamespace", "xsj:noNamespace"),
    ],
    ids=["privileges", "expires", "target", "owner", "extra-element", "prefix"],
)
def test_4_tampered_after_signing(world: World, genuine: Credential, pattern: str,
                                  replacement: str) -> None:
    edited = re.sub(pattern, replacement, genuine.xml, count=1)
    edited = edited.replace("xmlns:xsi=", "xmlns:xsj=") if "xsj:" in edited else edited
    assert edited != genuine.xml
    refused_everywhere(world, world.wrap(edited), GeniCode.CREDENTIAL_INVALID)


# 5. Delegation abuse --------------------------------------------------------------------------

def _delegate(world: World, parent: Credential, signer: str, privileges: list[str], *,
              expires: Any = None, target: GID | None = None) -> str:
    """A child for bob signed by `signer`, the rules of delegate_credential skipped."""
    by = world.ids[signer]
    child = assemble_credential(
        owner=world.ids["bob"].gid, target=target or parent.target_gid,
        privileges=[Privilege(p) for p in privileges], expires=expires or parent.expires,
        signer_key=by.key, signer=by.gid, parent=parent)
    return child.xml


def test_5_delegating_what_the_parent_cannot_delegate(world: World, genuine: Credential,
                                                     root: Authority) -> None:
    alice = world.ids["alice"]
    narrow = issue(root, alice.gid, genuine.target_gid, ["info"], delegatable=True)
    extra = _delegate(world, narrow, "alice", ["info", "control"])
    refused_everywhere(world, world.wrap(extra), GeniCode.CREDENTIAL_INVALID, "bob")
    undelegatable = issue(root, alice.gid, genuine.target_gid, ["embed"], delegatable=False)
    child = _delegate(world, undelegatable, "alice", ["embed"])
    refused_everywhere(world, world.wrap(child), GeniCode.CREDENTIAL_INVALID, "bob")


def test_5_child_outliving_parent_or_retargeted(world: World, genuine: Credential,
                                               root: Authority) -> None:
    alice = world.ids["alice"]
    parent = issue(root, alice.gid, genuine.target_gid, delegatable=True)
    later = _delegate(world, parent, "alice", ["embed"], expires=parent.expires + timedelta(1))
    refused_everywhere(world, world.wrap(later), GeniCode.CREDENTIAL_INVALID, "bob")
    other = parse_credential(world.creds["exp2"]).target_gid
    moved = _delegate(world, parent, "alice", ["embed"], target=other)
    refused_everywhere(world, world.wrap(moved), GeniCode.CREDENTIAL_INVALID, "bob")


def test_5_child_signed_by_someone_other_than_the_owner(world: World, genuine: Credential,
                                                       root: Authority) -> None:
    parent = issue(root, world.ids["alice"].gid, genuine.target_gid, delegatable=True)
    child = _delegate(world, parent, "bob", ["embed"])
    refused_everywhere(world, world.wrap(child), GeniCode.CREDENTIAL_SIGNER_UNTRUSTED, "bob")


# 8. Expired -----------------------------------------------------------------------------------

def test_8_expired_credential(world: World, genuine: Credential, root: Authority) -> None:
    old = issue(root, genuine.owner_gid, genuine.target_gid,
                expires=utcnow() - timedelta(minutes=1))
    refused_everywhere(world, world.wrap(old.xml), GeniCode.CREDENTIAL_EXPIRED)


def test_8_expired_owner_gid(world: World, genuine: Credential, root: Authority) -> None:
    alice = world.ids["alice"]
    stale = create_gid(urn=alice.gid.urn, public_key=alice.key.public_key(),
                       issuer_key=root.key, issuer=root.gid, lifetime=timedelta(minutes=-1))
    cred = issue(root, stale, genuine.target_gid)
    refused_everywhere(world, world.wrap(cred.xml), GeniCode.CREDENTIAL_EXPIRED)


def test_8_not_yet_valid_signer(world: World, genuine: Credential, root: Authority) -> None:
    early = forge_gid(root.gid, root.key,
                      mutate=lambda cert: cert.gmtime_adj_notBefore(3600))
    cred = assemble_credential(owner=genuine.owner_gid, target=genuine.target_gid,
                               privileges=[Privilege("*")], expires=future(),
                               signer_key=root.key, signer=early)
    refused_everywhere(world, world.wrap(cred.xml), GeniCode.CREDENTIAL_EXPIRED)


# 9. Authority overreach -----------------------------------------------------------------------

def test_9_untrusted_root_signing_for_plc_names(world: World, genuine: Credential) -> None:
    key = generate_private_key()
    ple = create_gid(urn="urn:publicid:IDN+ple+authority+sa", public_key=key.public_key(),
                     issuer_key=key, is_ca=True)
    cred = assemble_credential(owner=genuine.owner_gid, target=genuine.target_gid,
                               privileges=[Privilege("*")], expires=future(),
                               signer_key=key, signer=ple)
    refused_everywhere(world, world.wrap(cred.xml), GeniCode.CREDENTIAL_SIGNER_UNTRUSTED)


def test_9_sub_authority_signing_outside_its_subtree(world: World, genuine: Credential) -> None:
    princeton = world.deployment.authority_store().get("plc.princeton")
    elsewhere = parse_credential(world.creds["alice"]).target_gid  # plc.alice, above princeton
    cred = issue(princeton, genuine.owner_gid, elsewhere)
    registry = world.registry("alice")
    change = {"hrn": "plc.alice", "type": "user", "email": "evil@example.org"}
    refused_by_registry(world, lambda: registry.Update(change, world.wrap(cred.xml)),
                        GeniCode.CREDENTIAL_SIGNER_UNTRUSTED)


def test_9_non_ca_certificate_as_issuer(world: World, genuine: Credential) -> None:
    alice = world.ids["alice"]
    cred = assemble_credential(owner=alice.gid, target=genuine.target_gid,
                               privileges=[Privilege("*")], expires=future(),
                               signer_key=alice.key, signer=alice.gid)
    refused_everywhere(world, world.wrap(cred.xml), GeniCode.CREDENTIAL_SIGNER_UNTRUSTED)


# 11. Speaks-for forgery -----------------------------------------------------------------------


def test_11_speaks_for_forgeries(world: World, genuine: Credential, attacker_key) -> None:
    alice, bob = world.ids["alice"], world.ids["bob"]
    speaking = {"geni_speaking_for": alice.gid.urn}
    slice_cred = world.cred("exp1")
    by_bob = create_speaksfor(bob.key, bob.gid, bob.gid, future())
    refused_everywhere(world, [*slice_cred, abac(by_bob)], GeniCode.CREDENTIAL_MISMATCH,
                       "bob", speaking)
    real = create_speaksfor(alice.key, alice.gid, bob.gid, future())
    forged = resign(real, "ref0", attacker_key, certs_of(alice.gid))
    refused_by_aggregate(world, lambda: world.am("bob").Allocate(
        EXP1, [*slice_cred, abac(forged)], request('<node client_id="x"/>'), speaking),
        GeniCode.CREDENTIAL_INVALID)
    for_pi = create_speaksfor(alice.key, alice.gid, world.ids["pi"].gid, future())
    refused_by_aggregate(world, lambda: world.am("bob").Allocate(
        EXP1, [*slice_cred, abac(for_pi)], request('<node client_id="x"/>'), speaking),
        GeniCode.CREDENTIAL_MISMATCH)


def test_11_valid_speaks_for_does_not_skip_privileges(world: World, genuine: Credential,
                                                     root: Authority) -> None:
    alice, bob = world.ids["alice"], world.ids["bob"]
    valid = abac(create_speaksfor(alice.key, alice.gid, bob.gid, future()))
    info_only = issue(root, alice.gid, genuine.target_gid, ["info"])
    refused_by_aggregate(world, lambda: world.am("bob").Allocate(
        EXP1, [*world.wrap(info_only.xml), valid], request('<node client_id="x"/>'),
        {"geni_speaking_for": alice.gid.urn}), GeniCode.FORBIDDEN)


# 12. Malformed credential structs -------------------------------------------------------------

MALFORMED: list[Any] = [
    {"geni_type": "geni_foo", "geni_version": "3", "geni_value": "<x/>"},
    {"geni_type": "geni_sfa", "geni_version": "7", "geni_value": "<x/>"},
    {"geni_type": "geni_sfa", "geni_version": "3", "geni_value": ""},
    "this is not XML",
    xmlrpc.client.Binary(b""),
    42,
    ["<signed-credential/>"],
]


@pytest.mark.parametrize("bad", MALFORMED, ids=["type", "version", "empty", "not-xml",
                                                "empty-binary", "int", "list"])
def test_12_malformed_credential_structs(world: World, bad: Any) -> None:
    refused_everywhere(world, [bad], GeniCode.CREDENTIAL_INVALID)


def test_12_truncated_xml(world: World, genuine: Credential) -> None:
    refused_everywhere(world, [genuine.xml[: len(genuine.xml) // 2]],
                       GeniCode.CREDENTIAL_INVALID)


def test_genuine_credential_still_works(world: World) -> None:
    """The control: the same calls with the real credential succeed (then are undone)."""
    registry = world.registry("alice")
    assert registry.Update({**CHANGE, "description": "ours"}, [world.creds["exp1"]]) == 1
    reply = world.am().Allocate(EXP1, world.cred("exp1"), request('<node client_id="x"/>'), {})
    assert reply["code"]["geni_code"] == 0, reply["output"]
    assert world.am().Delete([EXP1], world.cred("exp1"), {})["code"]["geni_code"] == 0
