"""GIDs exactly as spec/trust.md: subject, subjectAltName, constraints, key ids, validity, PEM."""

from __future__ import annotations

import base64
import re
import uuid as uuidlib
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from sfa.errors import BadArgs, CredentialExpired, CredentialInvalid, GeniCode
from sfa.timeutil import utcnow
from sfa.trust import gid as gid_module
from sfa.trust.chain import verify_gid_chain
from sfa.trust.gid import GID, MAX_PEM_BYTES, create_gid
from sfa.trust.hierarchy import Authority
from sfa.trust.roots import TrustedRoots
from tests.trust.conftest import Principal, resign

E = TypeVar("E", bound=x509.ExtensionType)


def _ext(gid: GID, kind: type[E]) -> x509.Extension[E]:
    return gid.certificate.extensions.get_extension_for_class(kind)


def test_user_gid_identity(alice: Principal, princeton: Authority, plc: Authority) -> None:
    gid = alice.gid
    assert gid.urn == "urn:publicid:IDN+plc:princeton+user+alice"
    assert (gid.hrn, gid.type) == ("plc.princeton.alice", "user")
    assert gid.xrn.leaf == "alice"
    assert str(uuidlib.UUID(gid.uuid)) == gid.uuid
    assert gid.email == "alice@princeton.example"
    assert gid.subject_cn == "plc.princeton.alice"
    assert gid.issuer_cn == "plc.princeton"
    assert not gid.is_ca and not gid.is_self_signed
    assert gid.chain == (princeton.gid.certificate, plc.gid.certificate)
    assert gid.parent == princeton.gid
    assert gid.parent is not None and gid.parent.parent == plc.gid
    assert plc.gid.parent is None and plc.gid.is_self_signed and plc.gid.is_ca
    assert "plc:princeton+user+alice" in repr(gid)


def test_extensions_exactly_as_spec(alice: Principal, princeton: Authority) -> None:
    gid = alice.gid
    san = _ext(gid, x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        gid.urn, f"urn:uuid:{gid.uuid}"
    ]
    basic = _ext(gid, x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    princeton_basic = _ext(princeton.gid, x509.BasicConstraints)
    assert princeton_basic.critical and princeton_basic.value.ca is True
    aki = _ext(gid, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None and aki.key_identifier.hex() == princeton.gid.ski
    ski = _ext(gid, x509.SubjectKeyIdentifier).value
    assert ski.digest.hex() == gid.ski and re.fullmatch("[0-9a-f]{40}", gid.ski)
    assert isinstance(gid.certificate.signature_hash_algorithm, hashes.SHA256)
    assert gid.public_key.key_size >= 2048
    assert gid.certificate.version == x509.Version.v3


def test_validity_and_serials(alice: Principal, bob: Principal) -> None:
    now = utcnow()
    skew = now - alice.gid.not_before
    assert timedelta(minutes=4) < skew < timedelta(minutes=60)
    assert timedelta(days=360) < alice.gid.not_after - now <= timedelta(days=366)
    serials = {alice.gid.certificate.serial_number, bob.gid.certificate.serial_number}
    assert len(serials) == 2
    assert all(serial.bit_length() >= 64 for serial in serials)


def test_pem_chain_round_trip(alice: Principal) -> None:
    pem = alice.gid.to_pem()
    assert pem.count("-----BEGIN CERTIFICATE-----") == 3
    assert GID.from_pem(pem) == alice.gid
    assert GID.from_pem(pem.encode()) == alice.gid
    lone = alice.gid.to_pem(include_chain=False)
    assert lone.count("BEGIN CERTIFICATE") == 1
    assert GID.from_pem(lone) == GID(alice.gid.certificate)


def test_legacy_parent_separator_and_bare_base64(alice: Principal) -> None:
    pems = [c.public_bytes(serialization.Encoding.PEM).decode()
            for c in (alice.gid.certificate, *alice.gid.chain)]
    legacy = "-----parent-----".join(pems)
    assert GID.from_pem(legacy) == alice.gid
    assert GID.from_pem("Certificate:\n  text dump...\n" + pems[0]).urn == alice.gid.urn
    der = alice.gid.certificate.public_bytes(serialization.Encoding.DER)
    assert GID.from_pem(base64.encodebytes(der)).urn == alice.gid.urn


@pytest.mark.parametrize(
    "data",
    [b"", b"   \n", b"hello", "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
     "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
     "-----BEGIN CERTIFICATE-----\nMIIB"],
)
def test_malformed_refused(data: str | bytes) -> None:
    with pytest.raises(CredentialInvalid) as info:
        GID.from_pem(data)
    assert info.value.code == GeniCode.CREDENTIAL_INVALID


def test_oversized_refused() -> None:
    with pytest.raises(CredentialInvalid, match="larger"):
        GID.from_pem(b"A" * (MAX_PEM_BYTES + 1))


def test_service_gid_cn_and_escaped_names(plc: Authority) -> None:
    key = plc.key  # any 2048-bit key will do as the subject key here
    service = create_gid(
        urn="urn:publicid:IDN+plc+authority+am", public_key=key.public_key(),
        issuer_key=plc.key, issuer=plc.gid,
    )
    assert service.subject_cn == "plc.am" and service.type == "authority+am"
    escaped = create_gid(
        urn="urn:publicid:IDN+emulab.net+authority+sa", public_key=key.public_key(),
        issuer_key=key, is_ca=True,
    )
    assert escaped.hrn == r"emulab\.net" and escaped.subject_cn == r"emulab\.net"
    assert escaped.is_self_signed and escaped.is_ca


def test_long_cn_truncated_identity_in_urn(plc: Authority) -> None:
    leaf = "a" * 100
    gid = create_gid(
        urn=f"urn:publicid:IDN+plc+user+{leaf}", public_key=plc.key.public_key(),
        issuer_key=plc.key, issuer=plc.gid,
    )
    assert gid.subject_cn == f"plc.{leaf}"[:64]
    assert gid.hrn == f"plc.{leaf}"


def test_lifetime_capped_by_issuer(princeton: Authority) -> None:
    gid = create_gid(
        urn="urn:publicid:IDN+plc:princeton+user+longlived",
        public_key=princeton.key.public_key(),
        issuer_key=princeton.key, issuer=princeton.gid, lifetime=timedelta(days=365 * 50),
    )
    assert gid.not_after == princeton.gid.not_after


def test_dns_ip_and_given_uuid(plc: Authority) -> None:
    fixed = str(uuidlib.uuid4())
    gid = create_gid(
        urn="urn:publicid:IDN+plc+authority+sm", public_key=plc.key.public_key(),
        issuer_key=plc.key, issuer=plc.gid, uuid=fixed,
        dns_names=["sm.plc.example"], ip_addresses=["127.0.0.1", "::1"],
    )
    san = _ext(gid, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["sm.plc.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert gid.uuid == fixed and gid.email == ""
    with pytest.raises(BadArgs):
        create_gid(urn="urn:publicid:IDN+plc+authority+sm", public_key=plc.key.public_key(),
                   issuer_key=plc.key, issuer=plc.gid, ip_addresses=["not-an-ip"])


def test_signing_key_must_match(alice: Principal, plc: Authority, princeton: Authority) -> None:
    with pytest.raises(BadArgs, match="self-signed"):
        create_gid(urn="urn:publicid:IDN+x+authority+sa", public_key=alice.key.public_key(),
                   issuer_key=plc.key, is_ca=True)
    with pytest.raises(BadArgs, match="does not belong"):
        create_gid(urn="urn:publicid:IDN+plc:princeton+user+z",
                   public_key=alice.key.public_key(), issuer_key=plc.key, issuer=princeton.gid)
    with pytest.raises(BadArgs):
        create_gid(urn="not a urn", public_key=alice.key.public_key(), issuer_key=alice.key)


def test_certificate_without_our_extensions(alice: Principal) -> None:
    """Old or foreign certificates: no SAN, no SKI, no basicConstraints."""

    bare = x509.CertificateBuilder(
        subject_name=alice.gid.certificate.subject,
        issuer_name=alice.gid.certificate.subject,
        public_key=alice.key.public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=utcnow(),
        not_valid_after=utcnow() + timedelta(days=1),
    ).sign(alice.key, hashes.SHA256())
    gid = GID.from_certificate(resign(bare, alice.key, "sha1"))
    assert gid.urn == "" and gid.uuid == "" and gid.email == "" and gid.type == ""
    assert gid.hrn == "plc.princeton.alice"  # falls back to the CN
    assert not gid.is_ca
    assert gid.ski == alice.gid.ski  # computed from the key, the standard way
    assert len(gid.fingerprint) == 64 and gid.chain_fingerprints == (gid.fingerprint,)


# --- the parse cache ----------------------------------------------------------------------------


def test_parsing_the_same_pem_again_gives_the_same_gid_and_the_cache_is_bounded(
    alice: Principal,
) -> None:
    pem = alice.gid.to_pem()
    first = GID.from_pem(pem)
    assert GID.from_pem(pem.encode()) is first and first == alice.gid
    assert first.urn == alice.gid.urn and len(first.chain) == len(alice.gid.chain)
    info = gid_module._parsed_gid.cache_info()
    assert info.maxsize == gid_module.PARSE_CACHE_SIZE and info.currsize <= info.maxsize
    padded = pem + "\n" * (gid_module.CACHED_PEM_BYTES + 1)  # too long to be kept
    assert GID.from_pem(padded) is not GID.from_pem(padded)


def test_a_malformed_pem_is_refused_every_time(alice: Principal) -> None:
    broken = alice.gid.to_pem().replace("MII", "!!!", 1)
    for _ in range(2):  # an error is not remembered as a GID
        with pytest.raises(CredentialInvalid):
            GID.from_pem(broken)


def test_a_cached_gid_is_still_refused_when_revoked_or_expired(
    tmp_path: Path, plc: Authority, alice: Principal
) -> None:
    """Parsing is cached, trust is not: revocation and validity are checked at every use."""
    roots = TrustedRoots(tmp_path)
    roots.write(plc.gid, "plc")
    cached = GID.from_pem(alice.gid.to_pem())
    verify_gid_chain(cached, roots)
    with pytest.raises(CredentialExpired):
        verify_gid_chain(GID.from_pem(alice.gid.to_pem()), roots,
                         at=cached.not_after + timedelta(days=1))
    roots.revoke(alice.gid)
    with pytest.raises(CredentialInvalid, match="revoked"):
        verify_gid_chain(GID.from_pem(alice.gid.to_pem()), roots)
