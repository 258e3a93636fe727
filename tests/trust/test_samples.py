"""Real-world credentials from other GENI/SFA software parse and verify with ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfa.errors import CredentialExpired, CredentialInvalid, CredentialSignerUntrusted
from sfa.timeutil import parse_rfc3339
from sfa.trust.credential import parse_credential
from sfa.trust.gid import GID
from sfa.trust.roots import TrustedRoots
from sfa.trust.verify import TrustPolicy, authorize, verify_credential

ALICE = "ict-felix_stack__modules__resource__orchestrator__cert__credentials__alice-cred.xml"
OCF = ("fp7-ofelia_ocf__vt_manager__src__python__vt_manager__communication__sfa__credentials__"
       "ocf.i2cat.cred")
AS_OF = parse_rfc3339("2014-06-01T00:00:00Z")


def _policy(creds: Path, root: str, strict: bool = False) -> TrustPolicy:
    return TrustPolicy(roots=TrustedRoots(gids=[GID.from_pem((creds / root).read_bytes())]),
                       strict_crypto=strict)


@pytest.fixture(scope="module")
def creds(samples_dir: Path) -> Path:
    return samples_dir / "creds"


def test_gcf_user_credential(creds) -> None:
    xml = (creds / ALICE).read_text()
    policy = _policy(creds, "gcf-root-for-alice-cred.pem")
    credential = verify_credential(xml, policy, at=AS_OF)
    assert credential.owner_urn == "urn:publicid:IDN+geni:gpo:gcf+user+alice"
    assert credential.target_urn == credential.owner_urn
    assert credential.rights == {"refresh", "resolve", "info"}
    assert credential.expires == parse_rfc3339("2015-04-11T18:25:18Z")  # no zone: UTC
    call = authorize([xml], credential.owner_gid, policy, operation="resolve", at=AS_OF)
    assert call.caller_urn == credential.owner_urn


def test_ocf_authority_to_sub_authority_delegation(creds) -> None:
    xml = (creds / OCF).read_text()
    policy = _policy(creds, "ocf-root-for-ocf.i2cat.pem")
    parsed = parse_credential(xml)
    assert parsed.depth == 1
    assert parsed.parent is not None
    assert parsed.parent.target_urn == "urn:publicid:IDN+ocf+authority+sa"
    assert parsed.target_urn == "urn:publicid:IDN+ocf:i2cat+authority+sa"
    # It expired 2013-07-12, before the suggested 2014-06-01: verify inside its validity.
    credential = verify_credential(xml, policy, at=parse_rfc3339("2013-07-01T00:00:00Z"))
    assert credential.rights == {"authority"}
    with pytest.raises(CredentialExpired, match="2013-07-12"):
        verify_credential(xml, policy, at=AS_OF)


@pytest.mark.parametrize(("name", "root"), [(ALICE, "gcf-root-for-alice-cred.pem"),
                                            (OCF, "ocf-root-for-ocf.i2cat.pem")])
def test_samples_refused_under_strict_crypto(creds, name, root) -> None:
    with pytest.raises(CredentialInvalid):
        verify_credential((creds / name).read_text(), _policy(creds, root, strict=True),
                          at=parse_rfc3339("2013-07-01T00:00:00Z"))


def test_sample_signed_by_the_wrong_root_is_untrusted(creds) -> None:
    with pytest.raises(CredentialSignerUntrusted):
        verify_credential((creds / ALICE).read_text(),
                          _policy(creds, "ocf-root-for-ocf.i2cat.pem"), at=AS_OF)
