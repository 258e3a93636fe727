"""Helpers for the credential tests: build credentials and tamper with them like an attacker."""

from __future__ import annotations

import base64
import copy
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sfa.timeutil import utcnow
from sfa.trust.credential import Credential, create_credential
from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority
from sfa.trust.roots import TrustedRoots
from sfa.trust.verify import TrustPolicy
from sfa.trust.xmldsig import DSIG_NS, XML_ID, sign_element

DS = f"{{{DSIG_NS}}}"


def future(days: float = 1) -> datetime:
    return (utcnow() + timedelta(days=days)).replace(microsecond=0)


def policy(roots: TrustedRoots, **kwargs: Any) -> TrustPolicy:
    return TrustPolicy(roots=roots, **kwargs)


def issue(
    authority: Authority,
    owner: GID,
    target: GID,
    privileges: Any = "*",
    *,
    expires: datetime | None = None,
    delegatable: bool = False,
    algorithm: str = "rsa-sha256",
) -> Credential:
    return create_credential(
        owner=owner,
        target=target,
        privileges=privileges,
        expires=expires or future(),
        signer_key=authority.key,
        signer=authority.gid,
        delegatable=delegatable,
        algorithm=algorithm,
    )


def tree(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode())


def text(root: etree._Element) -> str:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()


def resign(
    xml: str, element_id: str, key: rsa.RSAPrivateKey, certs: list[Any], **edits: str
) -> str:
    """Edit fields of credential `element_id`, drop its signature and sign it again with `key`,
    putting `certs` in X509Data: what an attacker with their own key can do."""
    root = tree(xml)
    element = next(e for e in root.iter("credential") if e.get(XML_ID) == element_id)
    for tag, value in edits.items():
        node = element.find(tag)
        assert node is not None
        node.text = value
    signatures = root.find("signatures")
    assert signatures is not None
    for signature in list(signatures):
        if signature.get(XML_ID) == f"Sig_{element_id}":
            signatures.remove(signature)
    sign_element(element, signatures, key=key, certificates=certs)
    return text(root)


def deep(element: etree._Element) -> etree._Element:
    return copy.deepcopy(element)


def certs_of(gid: GID) -> list[Any]:
    """The certificates an attacker would borrow from `gid`: it and its chain."""
    return [gid.certificate, *gid.chain]


def put_key_value_first(document: etree._Element, key: rsa.RSAPrivateKey) -> None:
    """Put `key`'s RSAKeyValue before the certificate in the first signature's KeyInfo."""
    key_info = document.find(f"signatures/{DS}Signature/{DS}KeyInfo")
    assert key_info is not None
    numbers = key.public_key().public_numbers()
    key_value = etree.Element(f"{DS}KeyValue")
    rsa_value = etree.SubElement(key_value, f"{DS}RSAKeyValue")
    for tag, value in (("Modulus", numbers.n), ("Exponent", numbers.e)):
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        etree.SubElement(rsa_value, f"{DS}{tag}").text = base64.b64encode(raw).decode()
    key_info.insert(0, key_value)


def abac(xml: str) -> dict[str, Any]:
    """A speaks-for credential as the AM API's typed credential struct."""
    return {"geni_type": "geni_abac", "geni_version": "1", "geni_value": xml}
