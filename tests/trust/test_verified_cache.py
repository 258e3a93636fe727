"""The verified-credential cache: hits skip the signature work, never the clock or the roots."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sfa.errors import CredentialExpired, CredentialInvalid, CredentialSignerUntrusted
from sfa.trust import xmldsig
from sfa.trust.roots import TrustedRoots
from sfa.trust.verified_cache import VerifiedCredentials
from sfa.trust.verify import authorize, verify_credential
from tests.trust._credkit import future, issue, policy


@pytest.fixture()
def counted_verifies(monkeypatch):
    """Count the signature checks really made with xmlsec (the real function still runs)."""
    calls: list[str] = []
    real = xmldsig.verify_with_gid

    def counting(element, info, signer):
        calls.append(info.reference_id)
        real(element, info, signer)

    monkeypatch.setattr(xmldsig, "verify_with_gid", counting)
    return calls


def test_hit_skips_signature_work_and_returns_the_same_credential(
    princeton, alice, exp1_slice, plc, counted_verifies
) -> None:
    door = policy(TrustedRoots(gids=[plc.gid]), verified_cache=VerifiedCredentials())
    cred = issue(princeton, alice.gid, exp1_slice.gid)
    first = verify_credential(cred.xml, door)
    second = verify_credential(cred.xml, door)
    assert counted_verifies == ["ref0"]
    assert second is first
    call = authorize([cred.xml], alice.gid, door, operation="createsliver",
                     targets=[exp1_slice.gid.urn])
    assert call.credentials == (first,)
    assert counted_verifies == ["ref0"]


def test_without_a_cache_every_call_verifies(princeton, alice, exp1_slice, plc,
                                             counted_verifies) -> None:
    door = policy(TrustedRoots(gids=[plc.gid]))
    cred = issue(princeton, alice.gid, exp1_slice.gid)
    verify_credential(cred.xml, door)
    verify_credential(cred.xml, door)
    assert counted_verifies == ["ref0", "ref0"]


def test_expiry_is_checked_on_every_hit(princeton, alice, exp1_slice, plc) -> None:
    door = policy(TrustedRoots(gids=[plc.gid]), verified_cache=VerifiedCredentials())
    expires = future(days=1)
    cred = issue(princeton, alice.gid, exp1_slice.gid, expires=expires)
    verify_credential(cred.xml, door)
    with pytest.raises(CredentialExpired):
        verify_credential(cred.xml, door, at=expires + timedelta(seconds=1))
    with pytest.raises(CredentialExpired):
        authorize([cred.xml], alice.gid, door, operation="createsliver",
                  targets=[exp1_slice.gid.urn], at=expires + timedelta(seconds=1))


def test_certificate_windows_are_checked_on_every_hit(princeton, alice, exp1_slice, plc) -> None:
    door = policy(TrustedRoots(gids=[plc.gid]), verified_cache=VerifiedCredentials())
    cred = issue(princeton, alice.gid, exp1_slice.gid, expires=future(days=5000))
    verify_credential(cred.xml, door)
    after_certificates = alice.gid.not_after + timedelta(days=1)
    with pytest.raises(CredentialExpired):
        verify_credential(cred.xml, door, at=after_certificates)


def test_a_change_of_roots_invalidates(princeton, alice, exp1_slice, plc, ple) -> None:
    roots = TrustedRoots(gids=[plc.gid])
    door = policy(roots, verified_cache=VerifiedCredentials())
    cred = issue(princeton, alice.gid, exp1_slice.gid)
    verify_credential(cred.xml, door)
    roots.remove(plc.hrn)
    roots.add(ple.gid)
    with pytest.raises(CredentialSignerUntrusted):
        verify_credential(cred.xml, door)


def test_one_changed_byte_is_a_miss_and_is_refused(princeton, alice, exp1_slice, plc) -> None:
    cache = VerifiedCredentials()
    door = policy(TrustedRoots(gids=[plc.gid]), verified_cache=cache)
    cred = issue(princeton, alice.gid, exp1_slice.gid)
    verify_credential(cred.xml, door)
    tampered = cred.xml.replace("<name>embed</name>", "<name>embeD</name>")
    assert tampered != cred.xml
    with pytest.raises(CredentialInvalid):
        verify_credential(tampered, door)


def test_refused_documents_are_not_cached(princeton, alice, exp1_slice, plc,
                                          counted_verifies) -> None:
    door = policy(TrustedRoots(gids=[plc.gid]), verified_cache=VerifiedCredentials())
    expires = future(days=1)
    cred = issue(princeton, alice.gid, exp1_slice.gid, expires=expires)
    late = expires + timedelta(seconds=1)
    for _ in range(2):
        with pytest.raises(CredentialExpired):
            verify_credential(cred.xml, door, at=late)
    assert counted_verifies == ["ref0", "ref0"]
