"""spec/security.md items 1-9, 11, 12 against the door: each refused with the right GENI code,
and the door still accepts the genuine credential afterwards (no poisoned cache, no state)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sfa.errors import GeniCode, SfaError
from sfa.timeutil import utcnow
from sfa.trust.credential import Privilege, delegate_credential
from sfa.trust.gid import create_gid
from sfa.trust.hazmat import assemble_credential
from sfa.trust.keys import generate_private_key
from sfa.trust.speaksfor import create_speaksfor
from sfa.trust.verify import authorize
from sfa.trust.xmldsig import XML_ID
from tests.trust._credkit import (
    DS,
    abac,
    certs_of,
    future,
    issue,
    policy,
    put_key_value_first,
    resign,
    text,
    tree,
)


@pytest.fixture(scope="module")
def door(trusted_roots):
    return policy(trusted_roots)


@pytest.fixture(scope="module")
def genuine(princeton, alice, exp1_slice):
    return issue(princeton, alice.gid, exp1_slice.gid, delegatable=True)


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return generate_private_key()


@pytest.fixture
def refused(door, genuine, alice, exp1_slice) -> Callable[..., SfaError]:
    """Call the door with `creds` and expect `code`; then prove the genuine call still works."""

    def check(code: GeniCode, creds, peer=None, *, targets=None, operation="createsliver",
              options=None, **kwargs) -> SfaError:
        with pytest.raises(SfaError) as info:
            authorize(creds, peer or alice.gid, kwargs.pop("policy", door), operation=operation,
                      targets=[exp1_slice.gid.urn] if targets is None else targets,
                      options=options, **kwargs)
        assert info.value.code == code, info.value.message
        call = authorize([genuine.xml], alice.gid, door, operation="createsliver",
                         targets=[exp1_slice.gid.urn])
        assert call.credentials[0].serial == genuine.serial
        return info.value

    return check



# 1. Foreign key, borrowed certificate ---------------------------------------------------------


def test_foreign_key_with_borrowed_authority_certificate(genuine, princeton, attacker_key,
                                                         refused) -> None:
    forged = resign(genuine.xml, "ref0", attacker_key, certs_of(princeton.gid))
    refused(GeniCode.CREDENTIAL_INVALID, [forged])


def test_foreign_key_with_key_value_before_the_certificate(genuine, princeton, attacker_key,
                                                           refused) -> None:
    root = tree(resign(genuine.xml, "ref0", attacker_key, certs_of(princeton.gid)))
    put_key_value_first(root, attacker_key)
    refused(GeniCode.CREDENTIAL_INVALID, [text(root)])


# 2. Self-signed signer ------------------------------------------------------------------------


def test_self_signed_signer(alice, exp1_slice, refused) -> None:
    key = generate_private_key()
    fake_plc = create_gid(urn="urn:publicid:IDN+plc+authority+sa", public_key=key.public_key(),
                          issuer_key=key, is_ca=True)
    forged = assemble_credential(owner=alice.gid, target=exp1_slice.gid,
                                 privileges=[Privilege("embed")], expires=future(),
                                 signer_key=key, signer=fake_plc)
    refused(GeniCode.CREDENTIAL_SIGNER_UNTRUSTED, [forged.xml])


def test_signer_from_an_untrusted_root(evil, alice, exp1_slice, refused) -> None:
    forged = issue(evil, alice.gid, exp1_slice.gid)
    refused(GeniCode.CREDENTIAL_SIGNER_UNTRUSTED, [forged.xml])


# 3. Signature wrapping ------------------------------------------------------------------------


def test_unsigned_wrapper_around_a_signed_credential(genuine, bob, refused) -> None:
    root = tree(genuine.xml)
    signed = root.find("credential")
    wrapper = etree.Element("credential")
    wrapper.set(XML_ID, "wrap")
    for child in signed:
        if child.tag != "privileges":
            wrapper.append(etree.fromstring(etree.tostring(child)))
    wrapper.find("owner_urn").text = bob.gid.urn
    wrapper.find("owner_gid").text = bob.gid.to_pem()
    privileges = etree.SubElement(wrapper, "privileges")
    privileges.append(etree.fromstring(
        "<privilege><name>embed</name><can_delegate>false</can_delegate></privilege>"))
    etree.SubElement(wrapper, "parent").append(signed)
    root.insert(0, wrapper)
    refused(GeniCode.CREDENTIAL_INVALID, [text(root)], bob.gid)


def test_duplicate_xml_id(genuine, refused) -> None:
    root = tree(genuine.xml)
    copy = etree.fromstring(etree.tostring(root.find("credential")))
    copy.find("privileges/privilege/name").text = "authority"
    root.find(f"signatures/{DS}Signature").append(copy)  # hidden where a wrapper would hide it
    refused(GeniCode.CREDENTIAL_INVALID, [text(root)])


def test_reference_to_another_element(genuine, princeton, refused) -> None:
    root = tree(genuine.xml)
    element = root.find("credential")
    element.find("privileges/privilege/name").text = "authority"
    signature = root.find(f"signatures/{DS}Signature")
    signature.find(f".//{DS}Reference").set("URI", "#decoy")
    refused(GeniCode.CREDENTIAL_INVALID, [text(root)])


# 4. Tampered content --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [
        (r"<name>info</name>", "<name>authority</name>"),
        (r"<expires>[^<]*</expires>", "<expires>2099-01-01T00:00:00Z</expires>"),
        (r"<can_delegate>true</can_delegate>", "<can_delegate>false</can_delegate>"),
        (r"</privileges>",
         "<privilege><name>sa</name><can_delegate>true</can_delegate></privilege></privileges>"),
        (r"<uuid>", "<extra>1</extra><uuid>"),
        (r"xmlns:xsi=", "xmlns:xs2=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsi="),
        (r"xsi:", "foo:"),
    ],
)
def test_tampered_content(genuine, refused, pattern, replacement) -> None:
    edited = re.sub(pattern, replacement, genuine.xml)
    edited = edited.replace('xmlns:foo:', 'xmlns:foo=').replace(
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" foo:',
        'xmlns:foo="http://www.w3.org/2001/XMLSchema-instance" foo:')
    assert edited != genuine.xml
    refused(GeniCode.CREDENTIAL_INVALID, [edited])


def test_target_and_owner_swapped_after_signing(genuine, bob, princeton, refused) -> None:
    other = princeton.issue_gid("plc.princeton.exp2", "slice")[0]
    root = tree(genuine.xml)
    element = root.find("credential")
    element.find("target_urn").text = other.urn
    element.find("target_gid").text = other.to_pem()
    refused(GeniCode.CREDENTIAL_INVALID, [text(root)], targets=[other.urn])
    root = tree(genuine.xml)
    root.find("credential/owner_urn").text = bob.gid.urn
    root.find("credential/owner_gid").text = bob.gid.to_pem()
    refused(GeniCode.CREDENTIAL_INVALID, [text(root)], bob.gid)


# 5. Delegation abuse --------------------------------------------------------------------------


def _delegate_raw(parent, owner, to, privileges, *, expires=None, target=None):
    return assemble_credential(owner=to.gid, target=target or parent.target_gid,
                               privileges=privileges, expires=expires or parent.expires,
                               signer_key=owner.key, signer=owner.gid, parent=parent)


def test_delegating_a_privilege_not_held(princeton, alice, bob, exp1_slice, refused) -> None:
    parent = issue(princeton, alice.gid, exp1_slice.gid, ["embed"], delegatable=True)
    child = _delegate_raw(parent, alice, bob, [Privilege("embed"), Privilege("control")])
    refused(GeniCode.CREDENTIAL_INVALID, [child.xml], bob.gid)


def test_delegating_a_privilege_not_delegatable(princeton, alice, bob, exp1_slice,
                                                refused) -> None:
    parent = issue(princeton, alice.gid, exp1_slice.gid, ["embed"], delegatable=False)
    child = _delegate_raw(parent, alice, bob, [Privilege("embed")])
    refused(GeniCode.CREDENTIAL_INVALID, [child.xml], bob.gid)


def test_delegation_expiring_after_parent(genuine, alice, bob, refused) -> None:
    child = _delegate_raw(genuine, alice, bob, [Privilege("embed")],
                          expires=genuine.expires + timedelta(days=1))
    refused(GeniCode.CREDENTIAL_INVALID, [child.xml], bob.gid)


def test_delegation_signed_by_someone_else(genuine, bob, refused) -> None:
    child = _delegate_raw(genuine, bob, bob, [Privilege("embed")])
    refused(GeniCode.CREDENTIAL_SIGNER_UNTRUSTED, [child.xml], bob.gid)


def test_delegation_changing_the_target(genuine, alice, bob, princeton, refused) -> None:
    other = princeton.issue_gid("plc.princeton.exp3", "slice")[0]
    child = _delegate_raw(genuine, alice, bob, [Privilege("embed")], target=other)
    refused(GeniCode.CREDENTIAL_INVALID, [child.xml], bob.gid, targets=[other.urn])


def test_authority_narrowed_to_a_genuine_sub_authority(plc, princeton, alice, bob,
                                                        trusted_roots) -> None:
    parent = issue(plc, alice.gid, plc.gid, ["authority"], delegatable=True)
    child = _delegate_raw(parent, alice, bob, [Privilege("authority")], target=princeton.gid)
    call = authorize([child.xml], bob.gid, policy(trusted_roots), operation="register",
                     targets=[princeton.gid.urn], target_match="subtree")
    assert call.credentials[0].target_urn == princeton.gid.urn


def test_authority_narrowed_to_a_forged_sub_authority(plc, princeton, alice, bob,
                                                      refused) -> None:
    # Same URN as the real plc.princeton, but a self-made certificate: it must chain to a root.
    forged_key = generate_private_key()
    forged = create_gid(urn=princeton.gid.urn, public_key=forged_key.public_key(),
                        issuer_key=forged_key, is_ca=True)
    parent = issue(plc, alice.gid, plc.gid, ["authority"], delegatable=True)
    child = _delegate_raw(parent, alice, bob, [Privilege("authority")], target=forged)
    refused(GeniCode.CREDENTIAL_SIGNER_UNTRUSTED, [child.xml], bob.gid, operation="register",
            targets=[princeton.gid.urn], target_match="subtree")


def test_delegation_deeper_than_the_limit(genuine, alice, bob, trusted_roots,
                                          refused) -> None:
    cred = genuine
    for signer, to in ((alice, bob), (bob, alice), (alice, bob)):
        cred = delegate_credential(cred, to=to.gid, signer_key=signer.key, signer=signer.gid,
                                   delegatable=True)
    assert authorize([cred.xml], bob.gid, policy(trusted_roots), operation=None).rights
    refused(GeniCode.CREDENTIAL_INVALID, [cred.xml], bob.gid,
            policy=policy(trusted_roots, max_delegation_depth=2))


# 6. Stolen credential -------------------------------------------------------------------------


def test_stolen_credential(genuine, bob, refused) -> None:
    refused(GeniCode.CREDENTIAL_MISMATCH, [genuine.xml], bob.gid)


# 7. Wrong target ------------------------------------------------------------------------------


def test_slice_credential_on_another_slice(genuine, refused) -> None:
    refused(GeniCode.CREDENTIAL_MISMATCH, [genuine.xml],
            targets=["urn:publicid:IDN+plc:princeton+slice+other"])


def test_user_credential_as_slice_credential(princeton, alice, refused) -> None:
    user = issue(princeton, alice.gid, alice.gid)
    refused(GeniCode.CREDENTIAL_MISMATCH, [user.xml])


def test_one_credential_for_two_slices(genuine, exp1_slice, refused) -> None:
    refused(GeniCode.CREDENTIAL_MISMATCH, [genuine.xml],
            targets=[exp1_slice.gid.urn, "urn:publicid:IDN+plc:princeton+slice+other"])


def test_credential_naming_two_targets(genuine, refused) -> None:
    edited = genuine.xml.replace("<target_urn>", "<target_urn>urn:x</target_urn><target_urn>")
    refused(GeniCode.CREDENTIAL_INVALID, [edited])


# 8. Expired -----------------------------------------------------------------------------------


def test_expired_credential(princeton, alice, exp1_slice, refused) -> None:
    old = issue(princeton, alice.gid, exp1_slice.gid, expires=utcnow() - timedelta(minutes=1))
    refused(GeniCode.CREDENTIAL_EXPIRED, [old.xml])


def test_expired_gid_in_the_chain(princeton, exp1_slice, refused) -> None:
    gid, _ = princeton.issue_gid("plc.princeton.shortlived", "user",
                                   lifetime=timedelta(hours=1))
    cred = issue(princeton, gid, exp1_slice.gid, expires=future(days=3))
    later = utcnow() + timedelta(hours=2)
    refused(GeniCode.CREDENTIAL_EXPIRED, [cred.xml], gid, at=later)


def test_not_yet_valid_gid(genuine, refused) -> None:
    refused(GeniCode.CREDENTIAL_EXPIRED, [genuine.xml], at=utcnow() - timedelta(hours=1))


# 9. Authority overreach -----------------------------------------------------------------------


def test_other_root_signing_for_plc_names(ple, alice, exp1_slice, refused) -> None:
    refused(GeniCode.CREDENTIAL_SIGNER_UNTRUSTED, [issue(ple, alice.gid, exp1_slice.gid).xml])


def test_sub_authority_signing_outside_its_subtree(princeton, ple, alice, refused) -> None:
    foreign_slice = ple.issue_gid("ple.inria.s1", "slice")[0]
    cred = issue(princeton, alice.gid, foreign_slice)
    refused(GeniCode.CREDENTIAL_SIGNER_UNTRUSTED, [cred.xml], targets=[foreign_slice.urn])


def test_non_ca_certificate_as_issuer(alice, refused) -> None:
    key = generate_private_key()
    below = create_gid(urn="urn:publicid:IDN+plc:princeton:alice+slice+mine",
                       public_key=key.public_key(), issuer_key=alice.key, issuer=alice.gid)
    cred = assemble_credential(owner=alice.gid, target=below, privileges=[Privilege("embed")],
                               expires=future(), signer_key=alice.key, signer=alice.gid)
    refused(GeniCode.CREDENTIAL_SIGNER_UNTRUSTED, [cred.xml], targets=[below.urn])


# 11. Speaks-for forgery -----------------------------------------------------------------------



def test_speaks_for_not_signed_by_the_user(genuine, alice, bob, refused) -> None:
    by_bob = create_speaksfor(bob.key, bob.gid, bob.gid, future())
    refused(GeniCode.CREDENTIAL_MISMATCH, [genuine.xml, abac(by_bob)], bob.gid,
            options={"geni_speaking_for": alice.gid.urn})


def test_speaks_for_forged_signature(genuine, alice, bob, attacker_key, refused) -> None:
    real = create_speaksfor(alice.key, alice.gid, bob.gid, future())
    forged = resign(real, "ref0", attacker_key, certs_of(alice.gid))
    refused(GeniCode.CREDENTIAL_INVALID, [genuine.xml, abac(forged)], bob.gid,
            options={"geni_speaking_for": alice.gid.urn})


def test_speaks_for_tail_is_not_the_caller(genuine, alice, bob, princeton, refused) -> None:
    tool = princeton.issue_gid("plc.princeton.tool", "user")[0]
    for_tool = create_speaksfor(alice.key, alice.gid, tool, future())
    refused(GeniCode.CREDENTIAL_MISMATCH, [genuine.xml, abac(for_tool)], bob.gid,
            options={"geni_speaking_for": alice.gid.urn})


def test_speaks_for_does_not_skip_privilege_checks(princeton, alice, bob, exp1_slice,
                                                   refused) -> None:
    valid = abac(create_speaksfor(alice.key, alice.gid, bob.gid, future()))
    bobs_own = issue(princeton, bob.gid, exp1_slice.gid)
    refused(GeniCode.CREDENTIAL_MISMATCH, [bobs_own.xml, valid], bob.gid,
            options={"geni_speaking_for": alice.gid.urn})
    alices_info = issue(princeton, alice.gid, exp1_slice.gid, ["info"])
    refused(GeniCode.FORBIDDEN, [alices_info.xml, valid], bob.gid,
            options={"geni_speaking_for": alice.gid.urn})


def test_speaking_for_without_abac_credential(genuine, alice, bob, refused) -> None:
    refused(GeniCode.FORBIDDEN, [genuine.xml], bob.gid,
            options={"geni_speaking_for": alice.gid.urn})


# 12. Malformed credential structs -------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"geni_type": "geni_foo", "geni_version": "3", "geni_value": "<x/>"},
        {"geni_version": "3", "geni_value": "<x/>"},
        {"geni_type": "geni_sfa", "geni_version": "7", "geni_value": "<x/>"},
        {"geni_type": "geni_sfa", "geni_version": None, "geni_value": "<x/>"},
        {"geni_type": "geni_sfa", "geni_version": "3", "geni_value": ""},
        {"geni_type": "geni_sfa", "geni_version": "3"},
        {"geni_type": "geni_sfa", "geni_version": "3", "geni_value": 17},
        "",
        "   ",
        "this is not XML",
        b"",
        42,
        None,
        ["<signed-credential/>"],
    ],
)
def test_malformed_struct(bad, refused) -> None:
    refused(GeniCode.CREDENTIAL_INVALID, [bad])


def test_truncated_xml(genuine, refused) -> None:
    refused(GeniCode.CREDENTIAL_INVALID, [genuine.xml[: len(genuine.xml) // 2]])


def test_credentials_not_a_list(genuine, refused) -> None:
    refused(GeniCode.CREDENTIAL_INVALID, genuine.xml)
    refused(GeniCode.CREDENTIAL_INVALID, {"geni_type": "geni_sfa"})


# 13/14 as they reach credentials: entities, DTDs, oversize -------------------------------------


def test_entities_and_dtd_refused(genuine, refused) -> None:
    laughs = ('<?xml version="1.0"?><!DOCTYPE signed-credential [<!ENTITY a "aaaaaaaaaa">'
              '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>')
    body = genuine.xml.split("?>", 1)[1].replace("<serial>", "<serial>&b;")
    refused(GeniCode.CREDENTIAL_INVALID, [laughs + body])
    xxe = ('<?xml version="1.0"?><!DOCTYPE signed-credential [<!ENTITY x SYSTEM '
           '"file:///etc/passwd">]>')
    refused(GeniCode.CREDENTIAL_INVALID, [xxe + body.replace("&b;", "&x;")])


def test_oversized_credential_refused(genuine, trusted_roots, refused) -> None:
    padded = genuine.xml.replace("<uuid>", "<!--" + "x" * 2_000_000 + "--><uuid>")
    refused(GeniCode.CREDENTIAL_INVALID, [padded])
    small = policy(trusted_roots, max_credential_bytes=1000)
    refused(GeniCode.CREDENTIAL_INVALID, [genuine.xml], policy=small)


def test_a_comment_in_signed_text_cannot_change_what_is_read(genuine, door, alice,
                                                             exp1_slice) -> None:
    """Canonical XML drops comments, so one inserted into a signed field leaves the signature
    good; the field must still read as signed (`.text` alone stopped at the comment: the
    expiry read as a date, the privilege as a prefix of its name). A processing instruction
    is canonicalized, so it breaks the signature instead."""
    root = tree(genuine.xml)
    expires = root.find("credential/expires")
    stamp = expires.text
    expires.text = stamp[:10]
    expires.append(etree.Comment("x"))
    expires[0].tail = stamp[10:]
    name = root.find("credential/privileges/privilege/name")
    word = name.text
    name.text = word[:1]
    name.append(etree.Comment("y"))
    name[0].tail = word[1:]
    tampered = text(root)
    assert "<!--x-->" in tampered and genuine.xml != tampered
    granted = authorize([tampered], alice.gid, door, operation="createsliver",
                        targets=[exp1_slice.gid.urn])
    read = granted.credentials[0]
    assert read.expires == genuine.expires and granted.expires == genuine.expires
    assert read.privileges == genuine.privileges
