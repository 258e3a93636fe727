"""Chain verification: every rule of spec/trust.md "Chain verification", security items 8 and 9,
old peers' digests, the cache, and interoperability with `openssl verify`."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import crypto

from sfa.errors import (
    CredentialExpired,
    CredentialInvalid,
    CredentialSignerUntrusted,
    GeniCode,
    SfaError,
)
from sfa.safexml import parse_xml
from sfa.timeutil import utcnow
from sfa.trust.chain import clear_chain_cache, verify_certificate_signature, verify_gid_chain
from sfa.trust.gid import GID, create_gid
from sfa.trust.hierarchy import Authority
from sfa.trust.roots import TrustedRoots
from tests.trust.conftest import Principal, forge_gid, resign

AS_OF_2014 = datetime(2014, 6, 1, tzinfo=UTC)


def _refused(
    error: type[SfaError], gid: GID, roots: TrustedRoots, **kwargs: object
) -> SfaError:
    version, before = roots.version, roots.roots
    with pytest.raises(error) as info:
        verify_gid_chain(gid, roots, **kwargs)  # type: ignore[arg-type]
    assert info.value.code == error.code
    assert (roots.version, roots.roots) == (version, before)  # nothing changed
    return info.value


# --- the good paths -----------------------------------------------------------------------------


def test_user_chain_verifies_to_its_root(
    alice: Principal, plc: Authority, trusted_roots: TrustedRoots
) -> None:
    assert verify_gid_chain(alice.gid, trusted_roots) == plc.gid
    assert verify_gid_chain(alice.gid, trusted_roots) == plc.gid  # cached path


def test_root_and_sub_authority_verify(
    plc: Authority, princeton: Authority, trusted_roots: TrustedRoots
) -> None:
    assert verify_gid_chain(plc.gid, trusted_roots) == plc.gid
    assert verify_gid_chain(princeton.gid, trusted_roots) == plc.gid


def test_second_root_federates(ple: Authority, trusted_roots: TrustedRoots) -> None:
    user, _ = ple.issue_gid("ple.inria.bob", "user", public_key=ple.key.public_key())
    assert verify_gid_chain(user, trusted_roots) == ple.gid


def test_chain_without_the_root_certificate(
    alice: Principal, plc: Authority, trusted_roots: TrustedRoots
) -> None:
    trimmed = GID(alice.gid.certificate, alice.gid.chain[:1])
    assert verify_gid_chain(trimmed, trusted_roots) == plc.gid


def test_sub_authority_may_be_the_trusted_anchor(alice: Principal, princeton: Authority) -> None:
    roots = TrustedRoots(gids=[princeton.gid])
    assert verify_gid_chain(alice.gid, roots) == princeton.gid


def test_service_gid_verifies(princeton: Authority, trusted_roots: TrustedRoots) -> None:
    am, _ = princeton.issue_service_gid("am", "am.princeton.example",
                                        public_key=princeton.key.public_key())
    assert verify_gid_chain(am, trusted_roots).hrn == "plc"


# --- rule 1: validity at both ends ------------------------------------------------------------


def test_expired_and_not_yet_valid(alice: Principal, trusted_roots: TrustedRoots) -> None:
    later = alice.gid.not_after + timedelta(seconds=1)
    assert "expired" in _refused(CredentialExpired, alice.gid, trusted_roots, at=later).message
    earlier = alice.gid.not_before - timedelta(seconds=1)
    error = _refused(CredentialExpired, alice.gid, trusted_roots, at=earlier)
    assert "not valid before" in error.message
    # a verified (cached) chain is still refused outside its window
    verify_gid_chain(alice.gid, trusted_roots)
    _refused(CredentialExpired, alice.gid, trusted_roots, at=later)


def test_expired_intermediate(alice: Principal, princeton: Authority, plc: Authority,
                              trusted_roots: TrustedRoots) -> None:
    def expire(cert: crypto.X509) -> None:
        cert.set_notAfter(b"20200101000000Z")

    old_princeton = forge_gid(princeton.gid, plc.key, mutate=expire)
    gid = GID(alice.gid.certificate, (old_princeton.certificate, plc.gid.certificate))
    error = _refused(CredentialExpired, gid, trusted_roots)
    assert "plc:princeton+authority+sa" in error.message


# --- rule 2: signatures really verify -------------------------------------------------------


def test_bad_signature_refused(alice: Principal, evil: Authority,
                               trusted_roots: TrustedRoots) -> None:
    forged = forge_gid(alice.gid, evil.key)  # same names and chain, wrong signer
    assert "does not verify" in _refused(CredentialInvalid, forged, trusted_roots).message


def test_tampered_certificate_refused(alice: Principal, trusted_roots: TrustedRoots) -> None:
    der = bytearray(alice.gid.certificate.public_bytes(Encoding.DER))
    index = der.find(b"alice")
    der[index : index + 5] = b"eve00"
    tampered = GID(x509.load_der_x509_certificate(bytes(der)), alice.gid.chain)
    _refused(CredentialInvalid, tampered, trusted_roots)


def test_borrowed_root_subject_with_another_key(alice: Principal, tmp_path: Path,
                                                trusted_roots: TrustedRoots) -> None:
    fake_plc = Authority.create_root(tmp_path / "fakeplc", "plc")  # same subject, other key
    impostor, _ = fake_plc.issue_gid("plc.princeton.alice", "user",
                                     public_key=alice.key.public_key())
    _refused(CredentialSignerUntrusted, impostor, trusted_roots)
    lone = GID(impostor.certificate)  # without its chain: the real plc key must sign it
    _refused(CredentialInvalid, lone, trusted_roots)


def test_broken_chain_order(alice: Principal, ple: Authority,
                            trusted_roots: TrustedRoots) -> None:
    mixed = GID(alice.gid.certificate, (ple.gid.certificate,))
    assert "broken chain" in _refused(CredentialInvalid, mixed, trusted_roots).message


# --- rule 3: issuers are CAs named +authority+sa ----------------------------------------------


def test_non_ca_issuer_refused(alice: Principal, trusted_roots: TrustedRoots) -> None:
    child = create_gid(urn="urn:publicid:IDN+plc:princeton:alice+user+pet",
                       public_key=alice.key.public_key(), issuer_key=alice.key, issuer=alice.gid)
    error = _refused(CredentialSignerUntrusted, child, trusted_roots)
    assert "not a CA" in error.message


def test_ca_issuer_without_authority_urn_refused(
    princeton: Authority, alice: Principal, trusted_roots: TrustedRoots
) -> None:
    ca_user = create_gid(urn="urn:publicid:IDN+plc:princeton+user+carol", is_ca=True,
                         public_key=alice.key.public_key(), issuer_key=princeton.key,
                         issuer=princeton.gid)
    child = create_gid(urn="urn:publicid:IDN+plc:princeton:carol+user+x",
                       public_key=alice.key.public_key(), issuer_key=alice.key, issuer=ca_user)
    assert "not an authority" in _refused(CredentialSignerUntrusted, child, trusted_roots).message


# --- rules 4 and 5: authority overreach -------------------------------------------------------


def test_root_signing_for_another_root_refused(plc: Authority, alice: Principal,
                                               trusted_roots: TrustedRoots) -> None:
    overreach = create_gid(urn="urn:publicid:IDN+ple:inria+user+x",
                           public_key=alice.key.public_key(), issuer_key=plc.key, issuer=plc.gid)
    error = _refused(CredentialSignerUntrusted, overreach, trusted_roots)
    assert "outside its subtree" in error.message


def test_sibling_authority_overreach_refused(princeton: Authority, plc: Authority,
                                             alice: Principal, trusted_roots: TrustedRoots) -> None:
    gid = create_gid(urn="urn:publicid:IDN+plc:mit+user+x", public_key=alice.key.public_key(),
                     issuer_key=princeton.key, issuer=princeton.gid)
    _refused(CredentialSignerUntrusted, gid, trusted_roots)


def test_component_wise_prefix(plc: Authority, alice: Principal,
                               trusted_roots: TrustedRoots) -> None:
    prince = create_gid(urn="urn:publicid:IDN+plc:prince+authority+sa", is_ca=True,
                        public_key=alice.key.public_key(), issuer_key=plc.key, issuer=plc.gid)
    assert verify_gid_chain(prince, trusted_roots) == plc.gid
    gid = create_gid(urn="urn:publicid:IDN+plc:princeton+user+x",
                     public_key=alice.key.public_key(), issuer_key=alice.key, issuer=prince)
    _refused(CredentialSignerUntrusted, gid, trusted_roots)


def test_root_must_be_authority_for_leaf(plc: Authority, ple: Authority) -> None:
    # plc's root certificate is trusted only under the name ple: a root whose HRN is not
    # authority for the leaf cannot vouch for it, even when every link is sound.
    roots = TrustedRoots(gids=[plc.gid])
    stray = create_gid(urn="urn:publicid:IDN+ple+authority+sa", is_ca=True,
                       public_key=ple.key.public_key(), issuer_key=ple.key)
    _refused(CredentialSignerUntrusted, stray, roots)


def test_untrusted_roots_refused(mallory: Principal, evil: Authority,
                                 trusted_roots: TrustedRoots) -> None:
    _refused(CredentialSignerUntrusted, mallory.gid, trusted_roots)
    _refused(CredentialSignerUntrusted, evil.gid, trusted_roots)
    _refused(CredentialSignerUntrusted, GID(mallory.gid.certificate), trusted_roots)


def test_lone_user_certificate_without_intermediate(alice: Principal,
                                                    trusted_roots: TrustedRoots) -> None:
    _refused(CredentialSignerUntrusted, GID(alice.gid.certificate), trusted_roots)


# --- rule 6: depth, and malformed ----------------------------------------------------------------


def test_depth_bound(alice: Principal, plc: Authority, trusted_roots: TrustedRoots) -> None:
    assert verify_gid_chain(alice.gid, trusted_roots, max_depth=3) == plc.gid
    error = _refused(CredentialInvalid, alice.gid, trusted_roots, max_depth=2)
    assert "longer than 2" in error.message


def test_deep_chain_beyond_eight(plc: Authority, alice: Principal) -> None:
    issuer, hrn = plc.gid, ["plc"]
    key = alice.key
    for level in range(9):
        hrn.append(f"a{level}")
        issuer_key = plc.key if level == 0 else key
        issuer = create_gid(urn=f"urn:publicid:IDN+{':'.join(hrn)}+authority+sa", is_ca=True,
                            public_key=key.public_key(), issuer_key=issuer_key, issuer=issuer)
    roots = TrustedRoots(gids=[plc.gid])
    _refused(CredentialInvalid, issuer, roots)
    assert verify_gid_chain(issuer, roots, max_depth=10) == plc.gid


def test_certificate_without_urn_refused(alice: Principal, princeton: Authority,
                                         trusted_roots: TrustedRoots) -> None:
    bare = x509.CertificateBuilder(
        subject_name=alice.gid.certificate.subject, issuer_name=princeton.gid.certificate.subject,
        public_key=alice.key.public_key(), serial_number=x509.random_serial_number(),
        not_valid_before=utcnow() - timedelta(minutes=1),
        not_valid_after=utcnow() + timedelta(days=1),
    ).sign(princeton.key, hashes.SHA256())
    gid = GID(bare, princeton.gid.chain and (princeton.gid.certificate, *princeton.gid.chain))
    assert "no URN" in _refused(CredentialInvalid, gid, trusted_roots).message


# --- old peers: RSA-1024, MD5 and SHA-1 ------------------------------------------------------


@pytest.fixture(scope="module")
def old_chain() -> tuple[GID, GID]:
    """An RSA-1024 root signed with SHA-1 and a user under it signed with MD5."""
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (an old peer)
    user_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (an old peer)
    root = create_gid(urn="urn:publicid:IDN+old+authority+sa", is_ca=True,
                      public_key=root_key.public_key(), issuer_key=root_key)
    root = GID(resign(root.certificate, root_key, "sha1"))
    user = create_gid(urn="urn:publicid:IDN+old+user+ann", public_key=user_key.public_key(),
                      issuer_key=root_key, issuer=root)
    user = GID(resign(user.certificate, root_key, "md5"), (root.certificate,))
    return root, user


def test_old_digests_accepted_by_default(old_chain: tuple[GID, GID]) -> None:
    root, user = old_chain
    roots = TrustedRoots(gids=[root])
    assert verify_gid_chain(user, roots) == root


def test_old_digests_refused_when_strict(old_chain: tuple[GID, GID]) -> None:
    root, user = old_chain
    roots = TrustedRoots(gids=[root])
    error = _refused(CredentialInvalid, user, roots, strict_crypto=True)
    assert "strict_crypto" in error.message
    with pytest.raises(CredentialInvalid, match="MD5"):
        verify_certificate_signature(user.certificate, root.public_key, strict_crypto=True)
    verify_certificate_signature(user.certificate, root.public_key)


def test_strict_refuses_weak_key_even_with_sha256(old_chain: tuple[GID, GID]) -> None:
    root, _ = old_chain
    assert root.public_key.key_size == 1024
    _refused(CredentialInvalid, root, TrustedRoots(gids=[root]), strict_crypto=True)


def _sample_gid(samples_dir: Path, name: str, element: str) -> GID:
    tree = parse_xml((samples_dir / "creds" / name).read_bytes(), what="sample credential")
    return GID.from_pem(tree.findtext(f".//{element}") or "")


def test_real_world_gcf_user_chain(samples_dir: Path) -> None:
    name = "ict-felix_stack__modules__resource__orchestrator__cert__credentials__alice-cred.xml"
    owner = _sample_gid(samples_dir, name, "owner_gid")
    root = GID.from_pem((samples_dir / "creds" / "gcf-root-for-alice-cred.pem").read_bytes())
    roots = TrustedRoots(gids=[root])
    assert owner.urn == "urn:publicid:IDN+geni:gpo:gcf+user+alice"
    assert verify_gid_chain(owner, roots, at=AS_OF_2014) == root
    _refused(CredentialExpired, owner, roots)
    _refused(CredentialInvalid, owner, roots, at=AS_OF_2014, strict_crypto=True)


def test_real_world_ocf_sub_authority_chain(samples_dir: Path) -> None:
    name = ("fp7-ofelia_ocf__vt_manager__src__python__vt_manager__communication__sfa__"
            "credentials__ocf.i2cat.cred")
    target = _sample_gid(samples_dir, name, "target_gid")
    root = GID.from_pem((samples_dir / "creds" / "ocf-root-for-ocf.i2cat.pem").read_bytes())
    assert target.hrn.startswith("ocf")
    assert verify_gid_chain(target, TrustedRoots(gids=[root]), at=AS_OF_2014) == root


# --- the cache ----------------------------------------------------------------------------------


def test_cache_follows_root_changes(alice: Principal, plc: Authority, ple: Authority) -> None:
    roots = TrustedRoots(gids=[plc.gid, ple.gid])
    assert verify_gid_chain(alice.gid, roots) == plc.gid
    roots.remove("plc")
    _refused(CredentialSignerUntrusted, alice.gid, roots)
    roots.add(plc.gid)
    assert verify_gid_chain(alice.gid, roots) == plc.gid
    clear_chain_cache()
    assert verify_gid_chain(alice.gid, roots) == plc.gid


def test_cache_follows_directory_changes(alice: Principal, plc: Authority,
                                         tmp_path: Path) -> None:
    roots = TrustedRoots(tmp_path)
    _refused(CredentialSignerUntrusted, alice.gid, roots)
    assert not roots.reload_if_changed()
    (tmp_path / "plc.gid").write_text(plc.gid.to_pem())
    assert verify_gid_chain(alice.gid, roots) == plc.gid
    (tmp_path / "plc.gid").unlink()
    assert roots.reload_if_changed()
    _refused(CredentialSignerUntrusted, alice.gid, roots)


def test_cache_does_not_remember_failures(alice: Principal, evil: Authority, plc: Authority,
                                          trusted_roots: TrustedRoots) -> None:
    forged = forge_gid(alice.gid, evil.key)
    for _ in range(2):
        _refused(CredentialInvalid, forged, trusted_roots)
    assert verify_gid_chain(alice.gid, trusted_roots) == plc.gid


# --- interoperability -----------------------------------------------------------------------------


@pytest.mark.interop
def test_openssl_verifies_our_chains(tmp_path: Path, alice: Principal, plc: Authority,
                                     princeton: Authority) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("INTEROP NOT CHECKED: the openssl program is missing on this machine")
    (tmp_path / "root.pem").write_text(plc.gid.to_pem())
    (tmp_path / "chain.pem").write_text(princeton.gid.to_pem(include_chain=False))
    am, _ = princeton.issue_service_gid("am", "127.0.0.1", public_key=princeton.key.public_key())
    for name, gid in [("alice", alice.gid), ("am", am), ("princeton", princeton.gid)]:
        (tmp_path / f"{name}.pem").write_text(gid.to_pem(include_chain=False))
        result = subprocess.run(
            [openssl, "verify", "-x509_strict", "-CAfile", str(tmp_path / "root.pem"),
             "-untrusted", str(tmp_path / "chain.pem"), str(tmp_path / f"{name}.pem")],
            capture_output=True, text=True, check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith("OK")
    (tmp_path / "forged.pem").write_text(
        GID(resign(alice.gid.certificate, plc.key)).to_pem(include_chain=False)
    )
    result = subprocess.run(
        [openssl, "verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted",
         str(tmp_path / "chain.pem"), str(tmp_path / "forged.pem")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0


def test_error_codes_are_credential_codes() -> None:
    assert CredentialInvalid.code == GeniCode.CREDENTIAL_INVALID
    assert CredentialExpired.code == GeniCode.CREDENTIAL_EXPIRED
    assert CredentialSignerUntrusted.code == GeniCode.CREDENTIAL_SIGNER_UNTRUSTED


def test_omitted_root_chosen_by_key_among_same_named_roots(
    alice: Principal, plc: Authority, tmp_path: Path
) -> None:
    other_plc = Authority.create_root(tmp_path / "otherplc", "plc")
    roots = TrustedRoots(gids=[other_plc.gid, plc.gid])  # the wrong one first
    trimmed = GID(alice.gid.certificate, alice.gid.chain[:1])
    assert verify_gid_chain(trimmed, roots) == plc.gid
    only_other = TrustedRoots(gids=[other_plc.gid])
    _refused(CredentialInvalid, trimmed, only_other)
