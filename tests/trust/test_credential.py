"""Credential XML: creation, the exact layout, parsing, delegation mechanics."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from sfa.errors import BadArgs, CredentialInvalid, Forbidden
from sfa.trust.credential import (
    Privilege,
    create_credential,
    delegate_credential,
    parse_credential,
)
from sfa.trust.xmldsig import DSIG_NS, XML_ID
from tests.trust._credkit import future, issue

DS = f"{{{DSIG_NS}}}"


def test_layout_matches_the_spec(princeton, alice, exp1_slice) -> None:
    cred = issue(princeton, alice.gid, exp1_slice.gid)
    root = etree.fromstring(cred.xml.encode())
    assert root.tag == "signed-credential"
    assert [c.tag for c in root] == ["credential", "signatures"]
    element = root[0]
    assert element.get(XML_ID) == "ref0"
    assert [c.tag for c in element] == [
        "type", "serial", "owner_gid", "owner_urn", "target_gid", "target_urn", "uuid",
        "expires", "privileges",
    ]
    signature = root.find(f"signatures/{DS}Signature")
    assert signature.get(XML_ID) == "Sig_ref0"
    assert signature.find(f".//{DS}Reference").get("URI") == "#ref0"
    assert signature.find(f".//{DS}KeyValue") is None
    assert len(signature.findall(f".//{DS}X509Certificate")) == 2


def test_expires_written_as_plain_utc_seconds(princeton, alice, exp1_slice) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    cred = issue(princeton, alice.gid, exp1_slice.gid, expires=when)
    found = re.search(r"<expires>(.*)</expires>", cred.xml)
    assert found is not None
    written = found.group(1)
    assert written == "2030-01-02T03:04:05Z"
    assert cred.expires == when.replace(microsecond=0)


def test_fields_round_trip(princeton, alice, exp1_slice) -> None:
    cred = issue(princeton, alice.gid, exp1_slice.gid, ["embed", "info"], delegatable=True)
    again = parse_credential(cred.xml)
    assert again == cred
    assert again.owner_urn == alice.gid.urn
    assert again.target_urn == exp1_slice.gid.urn
    assert again.privileges == (Privilege("embed", True), Privilege("info", True))
    assert again.rights == {"embed", "info"}
    assert again.delegatable("embed")
    assert again.depth == 0 and again.parent is None


def test_star_means_default_rights_of_the_target(princeton, alice, exp1_slice) -> None:
    assert issue(princeton, alice.gid, exp1_slice.gid).rights == {
        "refresh", "embed", "bind", "control", "info"}
    assert issue(princeton, alice.gid, alice.gid).rights == {"refresh", "resolve", "info"}


def test_signer_key_must_match(princeton, alice, exp1_slice) -> None:
    with pytest.raises(BadArgs):
        create_credential(owner=alice.gid, target=exp1_slice.gid, privileges="*",
                          expires=future(), signer_key=alice.key, signer=princeton.gid)


def test_delegation_narrows_and_caps(princeton, alice, bob, exp1_slice) -> None:
    parent = issue(princeton, alice.gid, exp1_slice.gid, ["embed", "info", "bind"],
                   delegatable=True)
    child = delegate_credential(parent, to=bob.gid, signer_key=alice.key, signer=alice.gid,
                                privileges=["embed"], expires=future(days=400))
    assert child.rights == {"embed"}
    assert child.expires == parent.expires
    assert child.depth == 1
    assert child.parent is not None
    assert (child.parent.serial, child.parent.privileges) == (parent.serial, parent.privileges)
    assert child.owner_urn == bob.gid.urn and child.target_urn == parent.target_urn
    root = etree.fromstring(child.xml.encode())
    assert root.find("credential/parent/credential").get(XML_ID) == "ref0"
    ids = [s.get(XML_ID) for s in root.find("signatures")]
    assert ids == ["Sig_ref1", "Sig_ref0"]


def test_delegation_default_takes_all_delegatable(princeton, alice, bob, exp1_slice) -> None:
    parent = issue(princeton, alice.gid, exp1_slice.gid,
                   [Privilege("embed", True), Privilege("info", False)])
    child = delegate_credential(parent, to=bob.gid, signer_key=alice.key, signer=alice.gid)
    assert child.rights == {"embed"}


def test_only_the_owner_may_delegate(princeton, alice, bob, exp1_slice) -> None:
    parent = issue(princeton, alice.gid, exp1_slice.gid, delegatable=True)
    with pytest.raises(Forbidden, match="owner"):
        delegate_credential(parent, to=bob.gid, signer_key=bob.key, signer=bob.gid)


def test_cannot_delegate_what_is_not_delegatable(princeton, alice, bob, exp1_slice) -> None:
    parent = issue(princeton, alice.gid, exp1_slice.gid, ["embed"], delegatable=False)
    with pytest.raises(Forbidden):
        delegate_credential(parent, to=bob.gid, signer_key=alice.key, signer=alice.gid)
    with pytest.raises(Forbidden, match="control"):
        delegate_credential(parent, to=bob.gid, signer_key=alice.key, signer=alice.gid,
                            privileges=["control"])


def test_delegation_depth_three(princeton, alice, bob, exp1_slice) -> None:
    cred = issue(princeton, alice.gid, exp1_slice.gid, delegatable=True)
    owners = [(alice, bob), (bob, alice), (alice, bob)]
    for signer, to in owners:
        cred = delegate_credential(cred, to=to.gid, signer_key=signer.key, signer=signer.gid,
                                   delegatable=True)
    assert cred.depth == 3
    assert [c.xml_id for c in cred.chain] == ["ref3", "ref2", "ref1", "ref0"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T05:04:05+02:00", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05.250Z", datetime(2030, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
    ],
)
def test_expires_accepts_rfc3339_forms(princeton, alice, exp1_slice, text, expected) -> None:
    cred = issue(princeton, alice.gid, exp1_slice.gid)
    edited = re.sub(r"<expires>.*</expires>", f"<expires>{text}</expires>", cred.xml)
    assert parse_credential(edited).expires == expected


@pytest.mark.parametrize(
    ("pattern", "replacement", "message"),
    [
        (r"<target_urn>", "<target_urn>x</target_urn><target_urn>",
         "more than one <target_urn>"),
        (r"<expires>.*</expires>", "<expires>tomorrow</expires>", "expires"),
        (r"<expires>.*</expires>", "", "no <expires>"),
        (r"<type>privilege</type>", "<type>ticket</type>", "not 'privilege'"),
        (r' xml:id="ref0"', "", "no xml:id"),
        (r"<owner_urn>[^<]*</owner_urn>", "<owner_urn>urn:publicid:IDN+plc+user+x</owner_urn>",
         "differs"),
        (r"<can_delegate>false</can_delegate>", "<can_delegate>maybe</can_delegate>",
         "malformed <privilege>"),
        (r"<can_delegate>false</can_delegate>", "", "<privilege> has no <can_delegate>"),
        (r"<name>[^<]*</name>", "", "<privilege> has no <name>"),
        (r"<name>", "<name>x</name><name>", "<privilege> has more than one <name>"),
        (r"<name>[^<]*</name>", "<name> </name>", "malformed <privilege>"),
        (r"<signatures>", "<extra/><signatures>", "must hold"),
    ],
)
def test_malformed_structure_refused(  # noqa: PLR0917
    princeton, alice, exp1_slice, pattern, replacement, message
) -> None:
    cred = issue(princeton, alice.gid, exp1_slice.gid)
    edited = re.sub(pattern, replacement, cred.xml, count=1)
    with pytest.raises(CredentialInvalid, match=re.escape(message)):
        parse_credential(edited)


def test_not_a_credential_refused() -> None:
    with pytest.raises(CredentialInvalid, match="signed-credential"):
        parse_credential("<credential/>")
    with pytest.raises(CredentialInvalid, match="well-formed"):
        parse_credential("<signed-credential>")


def test_expiry_default_lifetime_is_not_assumed(princeton, alice, exp1_slice) -> None:
    when = future(days=2)
    assert issue(princeton, alice.gid, exp1_slice.gid, expires=when).expires == when
    assert when - datetime.now(UTC) > timedelta(days=1)
