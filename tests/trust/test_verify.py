"""The one door: wire forms, caller, rights, expiry, targets, empty lists."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sfa.errors import (
    CredentialExpired,
    CredentialInvalid,
    CredentialMismatch,
    CredentialSignerUntrusted,
    Forbidden,
    GeniCode,
)
from sfa.timeutil import utcnow
from sfa.trust.credential import delegate_credential
from sfa.trust.gid import create_bootstrap_certificate, create_gid
from sfa.trust.keys import generate_private_key
from sfa.trust.verify import authorize, verify_caller, verify_credential
from sfa.trust.wire_credentials import decode_credential
from tests.trust._credkit import future, issue, policy


@pytest.fixture(scope="module")
def slice_cred(princeton, alice, exp1_slice):
    return issue(princeton, alice.gid, exp1_slice.gid, delegatable=True)


@pytest.fixture(scope="module")
def door(trusted_roots):
    return policy(trusted_roots)


def _wire_forms(xml: str) -> list[object]:
    return [
        xml,
        xml.encode(),
        {"geni_type": "geni_sfa", "geni_version": "3", "geni_value": xml},
        {"geni_type": "geni_sfa", "geni_version": 3, "geni_value": xml.encode()},
        {"geni_type": "geni_sfa", "geni_version": "2", "geni_value": xml},
    ]


def test_every_wire_form_is_accepted(slice_cred, door, alice, exp1_slice) -> None:
    for form in _wire_forms(slice_cred.xml):
        call = authorize([form], alice.gid, door, operation="createsliver",
                         targets=[exp1_slice.gid.urn])
        assert call.caller_urn == alice.gid.urn
        assert call.tls_caller == alice.gid
        assert call.credentials[0].serial == slice_cred.serial
        assert call.rights == {"refresh", "embed", "bind", "control", "info"}
        assert call.expires == slice_cred.expires
        assert call.speaking_for is None
        assert call.allows("renewsliver") and not call.allows("register")


def test_earliest_expiry_and_union_of_rights(princeton, alice, exp1_slice, door) -> None:
    soon = issue(princeton, alice.gid, exp1_slice.gid, ["embed"], expires=future(days=1))
    later = issue(princeton, alice.gid, exp1_slice.gid, ["info"], expires=future(days=5))
    call = authorize([later.xml, soon.xml], alice.gid, door, operation=None,
                     targets=[exp1_slice.gid.urn])
    assert call.expires == soon.expires
    assert call.rights == {"embed", "info"}
    assert len(call.credentials) == 2


def test_unusable_credentials_are_dropped_when_another_works(  # noqa: PLR0917
    slice_cred, princeton, alice, bob, exp1_slice, door
) -> None:
    bobs = issue(princeton, bob.gid, exp1_slice.gid)
    user = issue(princeton, alice.gid, alice.gid)
    call = authorize([bobs.xml, user.xml, slice_cred.xml], alice.gid, door,
                     operation="createsliver", targets=[exp1_slice.gid.urn])
    assert [c.serial for c in call.credentials] == [slice_cred.serial]


def test_empty_list(alice, door) -> None:
    call = authorize([], alice.gid, door, operation=None, allow_empty=True)
    assert call.credentials == () and call.expires is None and call.rights == frozenset()
    with pytest.raises(Forbidden) as info:
        authorize([], alice.gid, door, operation="createsliver")
    assert info.value.code == GeniCode.FORBIDDEN


def test_non_empty_list_with_nothing_usable_is_an_error(princeton, alice, bob, exp1_slice,
                                                        door) -> None:
    bobs = issue(princeton, bob.gid, exp1_slice.gid)
    with pytest.raises(CredentialMismatch):
        authorize([bobs.xml], alice.gid, door, operation=None, allow_empty=True)


def test_operation_not_granted_is_forbidden(princeton, alice, exp1_slice, door) -> None:
    info_only = issue(princeton, alice.gid, exp1_slice.gid, ["info"])
    with pytest.raises(Forbidden, match="createsliver"):
        authorize([info_only.xml], alice.gid, door, operation="createsliver",
                  targets=[exp1_slice.gid.urn])


def test_subtree_and_any_target_matching(princeton, plc, alice, door) -> None:
    pi_cred = issue(princeton, alice.gid, princeton.gid)  # authority credential over princeton
    record = "urn:publicid:IDN+plc:princeton+user+carol"
    call = authorize([pi_cred.xml], alice.gid, door, operation="register", targets=[record],
                     target_match="subtree")
    assert "authority" in call.rights
    with pytest.raises(CredentialMismatch):
        authorize([pi_cred.xml], alice.gid, door, operation="register", targets=[record])
    with pytest.raises(CredentialMismatch):
        authorize([pi_cred.xml], alice.gid, door, operation="register",
                  targets=["urn:publicid:IDN+ple+user+dave"], target_match="subtree")
    user_cred = issue(princeton, alice.gid, alice.gid)
    call = authorize([user_cred.xml], alice.gid, door, operation="resolve",
                     targets=["urn:publicid:IDN+ple+user+dave"], target_match="any")
    assert call.credentials[0].target_urn == alice.gid.urn


def test_verify_as_of_a_time(slice_cred, door) -> None:
    assert verify_credential(slice_cred.xml, door, at=utcnow()).serial == slice_cred.serial
    with pytest.raises(CredentialExpired):
        verify_credential(slice_cred.xml, door, at=slice_cred.expires + timedelta(seconds=1))


def test_delegated_credential_through_the_door(slice_cred, alice, bob, exp1_slice,
                                               door) -> None:
    child = delegate_credential(slice_cred, to=bob.gid, signer_key=alice.key, signer=alice.gid,
                                privileges=["embed"])
    call = authorize([child.xml], bob.gid, door, operation="createsliver",
                     targets=[exp1_slice.gid.urn])
    assert call.caller_urn == bob.gid.urn and call.rights == {"embed"}
    with pytest.raises(CredentialMismatch):  # alice no longer owns the delegated copy
        authorize([child.xml], alice.gid, door, operation="createsliver",
                  targets=[exp1_slice.gid.urn])


def test_verify_caller(alice, mallory, door) -> None:
    assert verify_caller(alice.gid, door) == alice.gid
    with pytest.raises(CredentialSignerUntrusted):
        verify_caller(mallory.gid, door)


def test_self_signed_caller_only_when_allowed(door) -> None:
    key = generate_private_key()
    gid = create_gid(urn="urn:publicid:IDN+plc:princeton+user+newbie",
                     public_key=key.public_key(), issuer_key=key)
    with pytest.raises(CredentialSignerUntrusted):
        verify_caller(gid, door)
    assert verify_caller(gid, door, allow_self_signed=True) == gid
    with pytest.raises(CredentialExpired):
        verify_caller(gid, door, allow_self_signed=True, at=utcnow() + timedelta(days=3650))


def test_cn_only_caller_only_for_the_bootstrap(princeton, alice, door) -> None:
    """SFA sfi's bootstrap certificate names nobody (CN only): where self-signed callers are
    allowed it proves its key; anywhere else it is refused, saying why."""
    cn_only = create_bootstrap_certificate("plc.princeton.alice", alice.key)
    assert not cn_only.urn
    assert verify_caller(cn_only, door, allow_self_signed=True) == cn_only
    with pytest.raises(CredentialInvalid, match=r"no URN.*bootstrap"):
        verify_caller(cn_only, door)
    cred = issue(princeton, alice.gid, alice.gid)
    call = authorize([cred.xml], cn_only, door, operation="resolve", target_match="any",
                     allow_self_signed_caller=True)
    assert call.caller == alice.gid and call.tls_caller == cn_only
    with pytest.raises(CredentialInvalid, match="no URN"):
        authorize([cred.xml], cn_only, door, operation="resolve", target_match="any")


def test_untrusted_tls_caller_refused_before_credentials(slice_cred, mallory, door) -> None:
    with pytest.raises(CredentialSignerUntrusted):
        authorize([slice_cred.xml], mallory.gid, door, operation=None)


def test_decode_credential_forms() -> None:
    assert decode_credential("<x/>").kind == "geni_sfa"
    assert decode_credential({"geni_type": "geni_abac", "geni_version": "1",
                              "geni_value": "<x/>"}).kind == "geni_abac"
    with pytest.raises(CredentialInvalid):
        decode_credential({"geni_type": "geni_abac", "geni_version": "3", "geni_value": "<x/>"})
    with pytest.raises(CredentialInvalid):
        decode_credential({"geni_type": "geni_sfa", "geni_version": True, "geni_value": "<x/>"})
    with pytest.raises(CredentialInvalid, match="UTF-8"):
        decode_credential(b"\xff\xfe<")
    unknown = decode_credential({"geni_type": "geni_unknown", "geni_version": "0",
                                 "geni_value": "<x/>"})
    assert (unknown.kind, unknown.label) == ("", "geni_unknown")  # the document will decide


def test_unknown_label_is_decided_by_the_document(slice_cred, alice, door) -> None:
    """omni's `geni_unknown` (version "0") on an SFA credential: verified as one."""
    wire = {"geni_type": "geni_unknown", "geni_version": "0", "geni_value": slice_cred.xml}
    assert verify_credential(wire, door).target_urn == slice_cred.target_urn
    assert authorize([wire], alice.gid, door, operation="createsliver",
                     target_match="any").credentials[0].target_urn == slice_cred.target_urn
    with pytest.raises(CredentialInvalid, match="signed-credential"):
        authorize([{"geni_type": "geni_unknown", "geni_version": "0",
                    "geni_value": "<rspec/>"}], alice.gid, door, operation=None)


def _self_signed(principal, name: str = "alice"):
    """What sfi makes before it has a GID: a lone self-signed certificate for its key."""
    return create_gid(urn=f"urn:publicid:IDN+plc:princeton+user+{name}",
                      public_key=principal.key.public_key(), issuer_key=principal.key)


def test_self_signed_caller_refused_by_default(princeton, alice, door) -> None:
    cred = issue(princeton, alice.gid, alice.gid)
    with pytest.raises(CredentialSignerUntrusted):
        authorize([cred.xml], _self_signed(alice), door, operation="resolve", target_match="any")


def test_self_signed_caller_when_allowed_becomes_the_owner(princeton, alice, door) -> None:
    cred = issue(princeton, alice.gid, alice.gid)
    bootstrap = _self_signed(alice)
    call = authorize([cred.xml], bootstrap, door, operation="resolve", target_match="any",
                     allow_self_signed_caller=True)
    assert call.caller == alice.gid
    assert call.caller_urn == alice.gid.urn
    assert call.tls_caller == bootstrap


def test_self_signed_caller_needs_a_credential_owned_by_its_key(princeton, alice, bob,
                                                                door) -> None:
    bobs = issue(princeton, bob.gid, bob.gid)
    with pytest.raises(CredentialSignerUntrusted, match="owned by its key"):
        authorize([bobs.xml], _self_signed(alice), door, operation="resolve",
                  target_match="any", allow_self_signed_caller=True)
    with pytest.raises(Forbidden):
        authorize([], _self_signed(alice), door, operation="resolve", target_match="any",
                  allow_empty=True, allow_self_signed_caller=True)


def test_self_signed_caller_gets_only_what_the_credential_grants(princeton, alice,
                                                                  exp1_slice, door) -> None:
    cred = issue(princeton, alice.gid, alice.gid)
    with pytest.raises(Forbidden):
        authorize([cred.xml], _self_signed(alice), door, operation="createsliver",
                  target_match="any", allow_self_signed_caller=True)
    with pytest.raises(CredentialExpired):
        authorize([cred.xml], _self_signed(alice), door, operation="resolve",
                  target_match="any", allow_self_signed_caller=True,
                  at=utcnow() + timedelta(days=3650))
