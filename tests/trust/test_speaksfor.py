"""Speaks-for: a tool acts for a user; the user becomes the caller and every check still runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lxml import etree

from sfa.errors import CredentialExpired, CredentialInvalid, CredentialMismatch
from sfa.timeutil import utcnow
from sfa.trust.speaksfor import create_speaksfor, verify_speaksfor
from sfa.trust.verify import authorize
from tests.trust._credkit import future, issue, policy, resign


@pytest.fixture(scope="module")
def tool(princeton):
    gid, key = princeton.issue_gid("plc.princeton.tool", "user")
    return gid, key


def test_layout(alice, tool) -> None:
    xml = create_speaksfor(alice.key, alice.gid, tool[0], future())
    root = etree.fromstring(xml.encode())
    rt0 = root.find("credential/abac/rt0")
    assert root.findtext("credential/type") == "abac"
    assert rt0.findtext("version") == "1.1"
    assert rt0.findtext("head/ABACprincipal/keyid") == alice.gid.ski
    assert rt0.findtext("head/role") == f"speaks_for_{alice.gid.ski}"
    assert rt0.findtext("tail/ABACprincipal/keyid") == tool[0].ski


def test_verify_returns_the_user(alice, tool, trusted_roots) -> None:
    xml = create_speaksfor(alice.key, alice.gid, tool[0], future())
    user = verify_speaksfor(xml, tool[0], alice.gid.urn, policy(trusted_roots))
    assert user.urn == alice.gid.urn


def test_expired_speaks_for(alice, tool, trusted_roots) -> None:
    xml = create_speaksfor(alice.key, alice.gid, tool[0], utcnow() + timedelta(minutes=1))
    with pytest.raises(CredentialExpired):
        verify_speaksfor(xml, tool[0], alice.gid.urn, policy(trusted_roots),
                         at=utcnow() + timedelta(minutes=5))


def test_two_tails_refused(alice, bob, tool, trusted_roots) -> None:
    xml = create_speaksfor(alice.key, alice.gid, tool[0], future())
    root = etree.fromstring(xml.encode())
    rt0 = root.find("credential/abac/rt0")
    rt0.append(etree.fromstring(etree.tostring(rt0.find("tail"))))
    resigned = resign(etree.tostring(root).decode(), "ref0", alice.key,
                      [alice.gid.certificate, *alice.gid.chain])
    with pytest.raises(CredentialInvalid, match="one tail"):
        verify_speaksfor(resigned, tool[0], alice.gid.urn, policy(trusted_roots))


def test_wrong_user_urn(alice, bob, tool, trusted_roots) -> None:
    xml = create_speaksfor(alice.key, alice.gid, tool[0], future())
    with pytest.raises(CredentialMismatch):
        verify_speaksfor(xml, tool[0], bob.gid.urn, policy(trusted_roots))


@pytest.mark.parametrize("as_struct", [True, False])
def test_door_makes_the_user_the_caller(  # noqa: PLR0917
    princeton, alice, exp1_slice, tool, trusted_roots, as_struct
) -> None:
    slice_cred = issue(princeton, alice.gid, exp1_slice.gid)
    abac = create_speaksfor(alice.key, alice.gid, tool[0], future())
    wire = {"geni_type": "geni_abac", "geni_version": "1", "geni_value": abac} if as_struct \
        else abac  # v2 clients send it as a plain string
    call = authorize([slice_cred.xml, wire], tool[0], policy(trusted_roots),
                     operation="createsliver", targets=[exp1_slice.gid.urn],
                     options={"geni_speaking_for": alice.gid.urn})
    assert call.caller_urn == alice.gid.urn
    assert call.tls_caller == tool[0]
    assert call.speaking_for == alice.gid.urn
    assert call.credentials[0].serial == slice_cred.serial
