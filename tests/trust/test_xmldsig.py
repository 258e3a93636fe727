"""In-process XML signatures: sign, verify, and refuse what is not exactly signed."""

from __future__ import annotations

import pytest
from lxml import etree

from sfa.errors import CredentialInvalid, CredentialSignerUntrusted
from sfa.safexml import parse_xml
from sfa.trust.xmldsig import (
    DSIG_NS,
    RSA_SHA1,
    RSA_SHA256,
    XML_ID,
    check_unique_ids,
    read_signature,
    read_signatures,
    sign_element,
    verify_signed_element,
)

DS = f"{{{DSIG_NS}}}"


def _document(signer, key, algorithm: str = "rsa-sha256") -> str:
    root = etree.Element("doc")
    element = etree.SubElement(root, "item")
    element.set(XML_ID, "ref0")
    etree.SubElement(element, "value").text = "42"
    signatures = etree.SubElement(root, "signatures")
    sign_element(element, signatures, key=key, certificates=(signer.certificate, *signer.chain),
                 algorithm=algorithm)
    return etree.tostring(root).decode()


def _verify(xml: str, roots, **kwargs):
    root = parse_xml(xml)
    check_unique_ids(root)
    info = read_signatures(root.find("signatures"))["ref0"]
    return verify_signed_element(root, root.find("item"), info, roots, **kwargs)


@pytest.mark.parametrize(("algorithm", "uri"), [("rsa-sha256", RSA_SHA256), ("rsa-sha1", RSA_SHA1)])
def test_sign_and_verify(princeton, trusted_roots, algorithm: str, uri: str) -> None:
    xml = _document(princeton.gid, princeton.key, algorithm)
    root = parse_xml(xml)
    signature = root.find(f"signatures/{DS}Signature")
    assert signature.get(XML_ID) == "Sig_ref0"
    info = read_signature(signature)
    assert info.signature_method == uri
    assert info.reference_id == "ref0"
    assert len(info.certificates) == 2  # princeton and plc
    signer = _verify(xml, trusted_roots)
    assert signer.urn == princeton.gid.urn


def test_sha1_refused_when_strict(princeton, trusted_roots) -> None:
    xml = _document(princeton.gid, princeton.key, "rsa-sha1")
    with pytest.raises(CredentialInvalid, match="strict"):
        _verify(xml, trusted_roots, strict_crypto=True)


def test_unknown_algorithm_refused(princeton) -> None:
    with pytest.raises(Exception, match="unknown signature algorithm"):
        _document(princeton.gid, princeton.key, "rsa-md5")


def test_tampered_content_refused(princeton, trusted_roots) -> None:
    xml = _document(princeton.gid, princeton.key).replace(">42<", ">43<")
    with pytest.raises(CredentialInvalid, match="does not verify"):
        _verify(xml, trusted_roots)


def test_untrusted_signer_refused(mallory, evil, trusted_roots) -> None:
    xml = _document(evil.gid, evil.key)
    with pytest.raises(CredentialSignerUntrusted):
        _verify(xml, trusted_roots)


def test_duplicate_ids_refused() -> None:
    root = parse_xml('<a><b xml:id="x"/><c xml:id="x"/></a>')
    with pytest.raises(CredentialInvalid, match="more than once"):
        check_unique_ids(root)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('URI="#ref0"', 'URI=""', "same-document"),
        ('URI="#ref0"', "URI=\"#xpointer(id('ref0'))\"", "same-document"),
        ("xmldsig#enveloped-signature", "xmldsig#base64", "not allowed"),
        ("REC-xml-c14n-20010315", "REC-xml-c14n-20010316", "C14N"),
        ("xmldsig-more#rsa-sha256", "xmldsig-more#rsa-sha512", "signature method"),
        ("xmlenc#sha256", "xmlenc#sha512", "digest method"),
    ],
)
def test_signature_forms_refused(princeton, old: str, new: str, message: str) -> None:
    xml = _document(princeton.gid, princeton.key).replace(old, new)
    root = parse_xml(xml)
    with pytest.raises(CredentialInvalid, match=message):
        read_signatures(root.find("signatures"))


def test_two_references_refused(princeton) -> None:
    root = parse_xml(_document(princeton.gid, princeton.key))
    signed_info = root.find(f"signatures/{DS}Signature/{DS}SignedInfo")
    signed_info.append(etree.fromstring(etree.tostring(signed_info.find(f"{DS}Reference"))))
    with pytest.raises(CredentialInvalid, match="one Reference"):
        read_signatures(root.find("signatures"))


def test_signature_without_certificate_refused(princeton) -> None:
    root = parse_xml(_document(princeton.gid, princeton.key))
    key_info = root.find(f"signatures/{DS}Signature/{DS}KeyInfo")
    key_info.getparent().remove(key_info)
    with pytest.raises(CredentialSignerUntrusted, match="no X509Certificate"):
        read_signatures(root.find("signatures"))


def test_signature_must_cover_the_element_read(princeton, trusted_roots) -> None:
    root = parse_xml(_document(princeton.gid, princeton.key))
    other = etree.SubElement(root, "item")
    other.set(XML_ID, "ref1")
    info = read_signatures(root.find("signatures"))["ref0"]
    with pytest.raises(CredentialInvalid, match="not the element read"):
        verify_signed_element(root, other, info, trusted_roots)
