"""Enveloped XML signatures, signed and verified in-process with python-xmlsec.

One signature covers one element named by its `xml:id`: one Reference `URI="#<id>"`, the
enveloped-signature transform, inclusive C14N 1.0, and KeyInfo/X509Data holding the signer's
certificate chain. The verifying key is taken only from the first certificate of that X509Data,
after its chain verified against the trusted roots; `KeyValue` is never read. Only the `xml:id`
of the element about to be read is registered as an ID, and ids must be unique in the document,
so a signature cannot be made to cover anything but the element the caller then reads.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from xmlsec import constants as consts

from sfa.errors import BadArgs, CredentialInvalid, CredentialSignerUntrusted
from sfa.safexml import character_data
from sfa.trust.chain import verify_gid_chain
from sfa.trust.gid import GID
from sfa.trust.roots import TrustedRoots

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_DS = f"{{{DSIG_NS}}}"

C14N_INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_INCLUSIVE_COMMENTS = C14N_INCLUSIVE + "#WithComments"
ENVELOPED = DSIG_NS + "enveloped-signature"
RSA_SHA1 = DSIG_NS + "rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA1 = DSIG_NS + "sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

# algorithm name (as configured) -> (signature transform, digest transform)
SIGNING_ALGORITHMS: dict[str, tuple[Any, Any]] = {
    "rsa-sha256": (consts.TransformRsaSha256, consts.TransformSha256),
    "rsa-sha1": (consts.TransformRsaSha1, consts.TransformSha1),
}
_SIGNATURE_METHODS = {RSA_SHA256: False, RSA_SHA1: True}  # uri -> weak
_DIGEST_METHODS = {SHA256: False, SHA1: True}
_C14N_METHODS = (C14N_INCLUSIVE, C14N_INCLUSIVE_COMMENTS)
_REFERENCE_TRANSFORMS = (ENVELOPED, *_C14N_METHODS)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A small thread-safe bounded map: parsed certificates and xmlsec keys are reused, not
    redone. Values must not be None."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, key: K) -> V | None:
        """The value stored under `key`, or None."""
        return self._data.get(key)

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        # A hit is one dict lookup, without the lock: eviction is oldest-inserted first.
        value = self._data.get(key)
        if value is not None:
            return value
        value = make()
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._size:
                self._data.popitem(last=False)
        return value


@dataclass(frozen=True)
class SignatureInfo:
    """What a `<Signature>` says about itself, read before anything is trusted."""

    element: etree._Element
    reference_id: str
    signature_method: str
    digest_method: str
    certificates: tuple[str, ...]  # each X509Certificate's base64 text, in document order

    @property
    def weak(self) -> bool:
        return _SIGNATURE_METHODS[self.signature_method] or _DIGEST_METHODS[self.digest_method]


_GID_CACHE: BoundedCache[tuple[str, ...], GID] = BoundedCache()
_KEY_CACHE: BoundedCache[str, xmlsec.Key] = BoundedCache()  # by fingerprint
_SIGNING_KEY_CACHE: BoundedCache[bytes, xmlsec.Key] = BoundedCache(256)


# --- signing ----------------------------------------------------------------------------------


def sign_element(
    element: etree._Element,
    signatures: etree._Element,
    *,
    key: rsa.RSAPrivateKey,
    certificates: Sequence[x509.Certificate],
    algorithm: str = "rsa-sha256",
) -> etree._Element:
    """Sign `element` (which must carry an `xml:id`) and append the `<Signature>` to
    `signatures`; X509Data carries `certificates` (the signer's first, then its issuers)."""
    if algorithm not in SIGNING_ALGORITHMS:
        raise BadArgs(f"unknown signature algorithm {algorithm!r}: use rsa-sha256 or rsa-sha1")
    element_id = element.get(XML_ID)
    if not element_id:
        raise BadArgs("the element to sign has no xml:id")
    sign_method, digest_method = SIGNING_ALGORITHMS[algorithm]
    signature = xmlsec.template.create(element, consts.TransformInclC14N, sign_method)
    signature.set(XML_ID, f"Sig_{element_id}")
    reference = xmlsec.template.add_reference(signature, digest_method, uri=f"#{element_id}")
    xmlsec.template.add_transform(reference, consts.TransformEnveloped)
    signatures.append(signature)
    _register_id(element, element_id)
    context = xmlsec.SignatureContext()
    context.key = _signing_key(key)
    try:
        context.sign(signature)
    except xmlsec.Error as exc:
        signatures.remove(signature)
        raise BadArgs(f"could not sign element {element_id!r}: {exc}") from None
    _append_key_info(signature, certificates)
    return signature


def sign_document(
    root: etree._Element,
    element: etree._Element,
    *,
    key: rsa.RSAPrivateKey,
    signer: GID,
    algorithm: str = "rsa-sha256",
) -> str:
    """Sign `element` into a new `<signatures>` under `root` with `signer`'s chain in
    X509Data; return the whole document as UTF-8 XML text."""
    signatures = etree.SubElement(root, "signatures")
    sign_element(element, signatures, key=key, certificates=(signer.certificate, *signer.chain),
                 algorithm=algorithm)
    return document_text(root)


def document_text(root: etree._Element) -> str:
    """A signed document as the UTF-8 XML text that goes on the wire."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()


def _append_key_info(signature: etree._Element, certificates: Sequence[x509.Certificate]) -> None:
    key_info = etree.SubElement(signature, f"{_DS}KeyInfo")
    x509_data = etree.SubElement(key_info, f"{_DS}X509Data")
    for cert in certificates:
        der = cert.public_bytes(serialization.Encoding.DER)
        node = etree.SubElement(x509_data, f"{_DS}X509Certificate")
        node.text = base64.encodebytes(der).decode("ascii").strip()


def _signing_key(key: rsa.RSAPrivateKey) -> xmlsec.Key:
    fingerprint = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def make() -> xmlsec.Key:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return xmlsec.Key.from_memory(pem, consts.KeyDataFormatPem)

    return _SIGNING_KEY_CACHE.get_or_make(fingerprint, make)


# --- reading ----------------------------------------------------------------------------------


_ALL_IDS = etree.XPath("//@xml:id")


def check_unique_ids(root: etree._Element) -> None:
    """Refuse a document in which an `xml:id` value appears twice (signature wrapping)."""
    result = _ALL_IDS(root)
    values = result if isinstance(result, list) else []  # lxml's str results hash as str
    if len(set(values)) != len(values):
        twice = next(v for i, v in enumerate(values) if v in values[:i])
        raise CredentialInvalid(f"xml:id {twice!r} appears more than once; refused")


def signed_text(element: etree._Element) -> str:
    """An element's text as its signature covers it, stripped. Canonical XML drops comments
    and processing instructions, so one inserted into signed text leaves the signature good:
    the text around it is read as one (`.text` alone would stop at it)."""
    return character_data(element).strip()


def signed_field(element: etree._Element, path: str) -> str:
    """`signed_text` of the first element at `path` under `element`; "" when there is none."""
    found = element.find(path)
    return "" if found is None else signed_text(found)


def read_signatures(container: etree._Element | None) -> dict[str, SignatureInfo]:
    """The `<Signature>` children of `container`, by the id each one references."""
    result: dict[str, SignatureInfo] = {}
    if container is None:
        return result
    for element in container:
        if not isinstance(element.tag, str):
            continue
        if element.tag != f"{_DS}Signature":
            raise CredentialInvalid(f"unexpected element {element.tag!r} among the signatures")
        info = read_signature(element)
        if info.reference_id in result:
            raise CredentialInvalid(f"two signatures claim to cover {info.reference_id!r}")
        result[info.reference_id] = info
    return result


def read_signature(signature: etree._Element) -> SignatureInfo:
    """Parse one `<Signature>`: exactly one Reference to `#id`, known algorithms only."""
    signed_info = _only(_ds_children(signature), "SignedInfo", signature)
    parts = _ds_children(signed_info)
    c14n = _only(parts, "CanonicalizationMethod", signed_info).get("Algorithm")
    if c14n not in _C14N_METHODS:
        raise CredentialInvalid(f"canonicalization {c14n!r} is not inclusive C14N 1.0")
    method = _only(parts, "SignatureMethod", signed_info).get("Algorithm", "")
    if method not in _SIGNATURE_METHODS:
        raise CredentialInvalid(f"signature method {method!r} is not rsa-sha1 or rsa-sha256")
    references = parts.get("Reference", [])
    if len(references) != 1:
        raise CredentialInvalid(f"a signature must have one Reference, found {len(references)}")
    uri = references[0].get("URI", "")
    if not uri.startswith("#") or len(uri) < 2 or "(" in uri:
        raise CredentialInvalid(f"Reference URI {uri!r} is not a same-document '#id' reference")
    in_reference = _ds_children(references[0])
    digest = _only(in_reference, "DigestMethod", references[0]).get("Algorithm", "")
    if digest not in _DIGEST_METHODS:
        raise CredentialInvalid(f"digest method {digest!r} is not sha1 or sha256")
    for transforms in in_reference.get("Transforms", ())[:1]:
        for transform in transforms:
            if isinstance(transform.tag, str) and transform.get("Algorithm") not in (
                _REFERENCE_TRANSFORMS
            ):
                raise CredentialInvalid(
                    f"transform {transform.get('Algorithm')!r} is not allowed"
                )
    return SignatureInfo(
        element=signature,
        reference_id=uri[1:],
        signature_method=method,
        digest_method=digest,
        certificates=_certificates(signature),
    )


def _ds_children(element: etree._Element) -> dict[str, list[etree._Element]]:
    """The XMLDSig children of `element` by local name, in one pass."""
    found: dict[str, list[etree._Element]] = {}
    for child in element.iterchildren(f"{_DS}*"):
        found.setdefault(child.tag[len(_DS):], []).append(child)
    return found


def _only(
    parts: dict[str, list[etree._Element]], name: str, where: etree._Element
) -> etree._Element:
    found = parts.get(name, [])
    if len(found) != 1:
        raise CredentialInvalid(
            f"a signature's {etree.QName(where).localname} needs exactly one {name}, "
            f"found {len(found)}"
        )
    return found[0]


_X509_CERTIFICATES = f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate"


def _certificates(signature: etree._Element) -> tuple[str, ...]:
    # Kept as written (line breaks and all): the GID cache is keyed by these texts, and
    # whitespace is dropped only when a certificate is decoded, on a cache miss.
    texts = tuple(
        text for node in signature.iterfind(_X509_CERTIFICATES)
        if (text := node.text) and not text.isspace()
    )
    if not texts:
        raise CredentialSignerUntrusted("the signature carries no X509Certificate of its signer")
    return texts


# --- verifying --------------------------------------------------------------------------------


def signer_gid(info: SignatureInfo) -> GID:
    """The signer's GID from X509Data: the first certificate, its issuers ordered after it.
    Not yet trusted: pass it to `verify_gid_chain`."""
    return _GID_CACHE.get_or_make(info.certificates, lambda: _build_gid(info.certificates))


def _build_gid(texts: tuple[str, ...]) -> GID:
    certs = []
    for text in texts:
        try:
            der = base64.b64decode("".join(text.split()), validate=True)
            certs.append(x509.load_der_x509_certificate(der))
        except (ValueError, binascii.Error) as exc:
            raise CredentialInvalid(
                f"an X509Certificate in the signature is unreadable: {exc}"
            ) from None
    return GID.from_certificate(certs[0], tuple(_order_issuers(certs[0], certs[1:])))


def _order_issuers(
    leaf: x509.Certificate, others: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    ordered: list[x509.Certificate] = []
    remaining = list(others)
    current = leaf
    while remaining and current.issuer != current.subject:
        issuer = next((c for c in remaining if c.subject == current.issuer), None)
        if issuer is None:
            break
        ordered.append(issuer)
        remaining.remove(issuer)
        current = issuer
    return ordered


def verify_signed_element(
    root: etree._Element,
    element: etree._Element,
    info: SignatureInfo,
    roots: TrustedRoots,
    *,
    at: datetime | None = None,
    strict_crypto: bool = False,
) -> GID:
    """Verify `info`'s signature over exactly `element`; return the signer's verified GID."""
    element_id = element.get(XML_ID)
    if not element_id or element_id != info.reference_id:
        raise CredentialInvalid(
            f"the signature covers {info.reference_id!r}, not the element read ({element_id!r})"
        )
    if strict_crypto and info.weak:
        raise CredentialInvalid(
            f"signature over {element_id!r} uses SHA-1, refused by strict_crypto"
        )
    signer = signer_gid(info)
    verify_gid_chain(signer, roots, at=at, strict_crypto=strict_crypto)
    verify_with_gid(element, info, signer)
    return signer


_ENABLED_SIGNATURE_TRANSFORMS = (
    consts.TransformInclC14N,
    consts.TransformInclC14NWithComments,
    consts.TransformRsaSha1,
    consts.TransformRsaSha256,
)
_ENABLED_REFERENCE_TRANSFORMS = (
    consts.TransformInclC14N,
    consts.TransformInclC14NWithComments,
    consts.TransformSha1,
    consts.TransformSha256,
    consts.TransformEnveloped,
)


def verify_with_gid(element: etree._Element, info: SignatureInfo, signer: GID) -> None:
    """Check the signature math with the public key of `signer`'s certificate (and nothing
    else): xmlsec accepts only the transforms `read_signature` allows."""
    _register_id(element, info.reference_id)
    context = xmlsec.SignatureContext()
    for transform in _ENABLED_SIGNATURE_TRANSFORMS:
        context.enable_signature_transform(transform)
    for transform in _ENABLED_REFERENCE_TRANSFORMS:
        context.enable_reference_transform(transform)
    context.key = _verifying_key(signer)
    try:
        context.verify(info.element)
    except xmlsec.Error:
        raise CredentialInvalid(
            f"the signature over {info.reference_id!r} does not verify with the key of "
            f"{signer.certificate.subject.rfc4514_string()!r}: the content was altered or "
            "signed by another key"
        ) from None


def _verifying_key(signer: GID) -> xmlsec.Key:
    def make() -> xmlsec.Key:
        public = signer.certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise CredentialInvalid("the signer's certificate does not hold an RSA key")
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return xmlsec.Key.from_memory(der, consts.KeyDataFormatDer)

    return _KEY_CACHE.get_or_make(signer.fingerprint, make)


def _register_id(element: etree._Element, value: str) -> None:
    # A newly created xml:id attribute is registered by libxml2 as an ID; the hardened parser
    # registers none, so xmlsec can resolve only the elements the caller is about to read.
    if XML_ID in element.attrib:
        del element.attrib[XML_ID]
    element.set(XML_ID, value)
