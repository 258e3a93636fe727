"""Interoperability with the stock xmlsec1 program, the way the older SFA tools call it."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sfa.errors import CredentialInvalid
from sfa.trust.credential import delegate_credential
from sfa.trust.keys import generate_private_key, private_key_to_pem
from sfa.trust.verify import authorize, verify_credential
from sfa.trust.xmldsig import XML_ID
from tests.trust._credkit import issue, policy

XMLSEC1 = shutil.which("xmlsec1")
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 NOT INSTALLED: interop tests skipped "
                       "(install the xmlsec1 package; `make test` tries to)"),
]


def _xmlsec1_verify(path: Path, node_id: str, root_pem: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(XMLSEC1), "--verify", "--node-id", node_id, "--enabled-key-data", "x509",
         "--trusted-pem", str(root_pem), str(path)],
        capture_output=True, text=True, timeout=30, check=False,
    )


@pytest.fixture(scope="module")
def root_pem(tmp_path_factory, plc) -> Path:
    path = tmp_path_factory.mktemp("interop") / "plc.pem"
    path.write_text(plc.gid.to_pem(include_chain=False))
    return path


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_stock_xmlsec1_verifies_our_credentials(  # noqa: PLR0917
    depth, princeton, alice, bob, exp1_slice, root_pem, tmp_path
) -> None:
    cred = issue(princeton, alice.gid, exp1_slice.gid, delegatable=True)
    owners = [(alice, bob), (bob, alice), (alice, bob)]
    for signer, to in owners[:depth]:
        cred = delegate_credential(cred, to=to.gid, signer_key=signer.key, signer=signer.gid,
                                   delegatable=True)
    path = tmp_path / "cred.xml"
    path.write_text(cred.xml)
    for link in cred.chain:
        result = _xmlsec1_verify(path, f"Sig_{link.xml_id}", root_pem)
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout + result.stderr


def test_stock_xmlsec1_notices_tampering(
    princeton, alice, exp1_slice, root_pem, tmp_path
) -> None:
    cred = issue(princeton, alice.gid, exp1_slice.gid)
    path = tmp_path / "cred.xml"
    path.write_text(cred.xml.replace("<name>info</name>", "<name>authority</name>"))
    assert _xmlsec1_verify(path, "Sig_ref0", root_pem).returncode != 0


_TEMPLATE_SIGNATURE = """<Signature xmlns="http://www.w3.org/2000/09/xmldsig#" xml:id="Sig_{id}">
  <SignedInfo>
    <CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>
    <SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"/>
    <Reference URI="#{id}">
      <Transforms>
        <Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
      </Transforms>
      <DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/>
      <DigestValue></DigestValue>
    </Reference>
  </SignedInfo>
  <SignatureValue/>
  <KeyInfo>
    <X509Data><X509SubjectName/><X509IssuerSerial/><X509Certificate/></X509Data>
    <KeyValue/>
  </KeyInfo>
</Signature>"""


def _sign_the_old_way(unsigned: str, key, gid, tmp_path: Path) -> str:
    """What older SFA software does: a template, then `xmlsec1 --sign` with key and chain."""
    root = etree.fromstring(unsigned.encode())
    element = root.find("credential")
    signatures = root.find("signatures")
    for child in list(signatures):
        signatures.remove(child)
    signatures.append(etree.fromstring(_TEMPLATE_SIGNATURE.format(id=element.get(XML_ID))))
    template = tmp_path / "template.xml"
    template.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    key_file = tmp_path / "signer.pkey"
    key_file.write_bytes(private_key_to_pem(key))
    cert_file = tmp_path / "signer.gid"
    cert_file.write_text(gid.to_pem())
    out = tmp_path / "signed.xml"
    result = subprocess.run(
        [str(XMLSEC1), "--sign", "--node-id", f"Sig_{element.get(XML_ID)}", "--privkey-pem",
         f"{key_file},{cert_file}", "--output", str(out), str(template)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    return out.read_text()


def test_credentials_signed_by_xmlsec1_rsa_sha1_verify_with_ours(  # noqa: PLR0917
    princeton, alice, exp1_slice, trusted_roots, root_pem, tmp_path
) -> None:
    ours = issue(princeton, alice.gid, exp1_slice.gid)
    signed = _sign_the_old_way(ours.xml, princeton.key, princeton.gid, tmp_path)
    assert "xmldsig#rsa-sha1" in signed and "<KeyValue>" in signed
    credential = verify_credential(signed, policy(trusted_roots))
    assert credential.target_urn == exp1_slice.gid.urn
    call = authorize([signed], alice.gid, policy(trusted_roots), operation="createsliver",
                     targets=[exp1_slice.gid.urn])
    assert call.rights == ours.rights
    assert _xmlsec1_verify(tmp_path / "signed.xml", "Sig_ref0", root_pem).returncode == 0


def test_borrowed_certificate_fools_xmlsec1_without_x509_but_not_us(
    princeton, alice, exp1_slice, trusted_roots, tmp_path
) -> None:
    """Security item 1: sign with our own key; put a genuine authority certificate in X509Data
    and our key in KeyValue. Stock xmlsec1 without `--enabled-key-data x509` takes the KeyValue."""
    attacker = generate_private_key()
    ours = issue(princeton, alice.gid, exp1_slice.gid)
    root = etree.fromstring(ours.xml.encode())
    root.find("credential/privileges/privilege/name").text = "authority"
    forged = _sign_the_old_way(etree.tostring(root).decode(), attacker, princeton.gid, tmp_path)
    root = etree.fromstring(forged.encode())
    certs = root.findall(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate")
    genuine = princeton.gid.certificate.public_bytes(serialization.Encoding.DER)
    assert certs, "xmlsec1 wrote no certificate"
    certs[0].text = base64.b64encode(genuine).decode()
    path = tmp_path / "forged.xml"
    path.write_bytes(etree.tostring(root))
    naive = subprocess.run([str(XMLSEC1), "--verify", "--node-id", "Sig_ref0", str(path)],
                           capture_output=True, text=True, timeout=30, check=False)
    assert naive.returncode == 0, "expected the naive xmlsec1 call to be fooled"
    with pytest.raises(CredentialInvalid):
        verify_credential(path.read_text(), policy(trusted_roots))
