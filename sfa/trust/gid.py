"""GIDs: X.509 certificates carrying a URN and a UUID, with their issuer chain (`spec/trust.md`)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sfa.errors import BadArgs, CredentialInvalid
from sfa.timeutil import utcnow
from sfa.trust.keys import public_keys_equal
from sfa.xrn import Xrn, hrn_split, urn_to_hrn

CN_MAX = 64
BACKDATE = timedelta(minutes=5)
MAX_PEM_BYTES = 1_000_000
# Parsed GIDs and certificate fields kept per process, by exact bytes (a node host's thousand
# node managers read the same slice, aggregate and root certificates in every ticket). Parsing
# decides nothing: validity, revocation and chains are checked by their callers on every use.
PARSE_CACHE_SIZE = 1024
CACHED_PEM_BYTES = 65_536  # larger texts are parsed every time
_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"


def _cn_of(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


@dataclass(frozen=True, eq=True)
class GID:
    """A certificate and its issuers (nearest first, up to and including the root)."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def from_certificate(
        cls, cert: x509.Certificate, chain: Sequence[x509.Certificate] = ()
    ) -> GID:
        return cls(certificate=cert, chain=tuple(chain))

    @classmethod
    def from_pem(cls, data: str | bytes) -> GID:
        """Parse a PEM chain (leaf first), a legacy `-----parent-----` chain, a lone PEM
        certificate, or bare base64 DER (as some credentials carry it)."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if cls is GID and len(raw) <= CACHED_PEM_BYTES:
            return _parsed_gid(raw)
        certs = _load_certificates(raw)
        return cls(certificate=certs[0], chain=tuple(certs[1:]))

    def to_pem(self, include_chain: bool = True) -> str:
        """PEM of the certificate, followed by each issuer's PEM when `include_chain`."""
        return self._pem_chain if include_chain else self._pem_leaf

    @cached_property
    def _pem_leaf(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @cached_property
    def _pem_chain(self) -> str:
        issuers = (c.public_bytes(serialization.Encoding.PEM).decode() for c in self.chain)
        return "".join((self._pem_leaf, *issuers))

    # --- identity ----------------------------------------------------------------------------

    @cached_property
    def _san_uris(self) -> tuple[str, ...]:
        return _san_uris(self.certificate)

    @cached_property
    def urn(self) -> str:
        """The URN from subjectAltName (`` when the certificate carries none)."""
        for uri in self._san_uris:
            if uri[:16].lower() == "urn:publicid:idn":
                return uri
        return ""

    @cached_property
    def _hrn_type(self) -> tuple[str, str]:
        if not self.urn:
            return self.subject_cn, ""
        return urn_to_hrn(self.urn)

    @property
    def hrn(self) -> str:
        """The HRN of the URN (the CN when there is no URN)."""
        return self._hrn_type[0]

    @property
    def type(self) -> str:
        """`user`, `slice`, `node`, `authority`, `authority+am`, ... (`` without a URN)."""
        return self._hrn_type[1]

    @cached_property
    def hrn_parts(self) -> tuple[str, ...]:
        """The HRN's unescaped components, split once (() when the HRN is malformed)."""
        try:
            return tuple(hrn_split(self.hrn)) if self.hrn else ()
        except BadArgs:
            return ()

    def is_authority_for(self, other: GID) -> bool:
        """True when this GID's HRN is `other`'s or an ancestor of it (component-wise)."""
        mine, theirs = self.hrn_parts, other.hrn_parts
        return bool(mine) and len(mine) <= len(theirs) and theirs[: len(mine)] == mine

    @property
    def xrn(self) -> Xrn:
        return Xrn(hrn=self.hrn, type=self.type, urn=self.urn)

    @cached_property
    def uuid(self) -> str:
        """The UUID from `URI:urn:uuid:...` (`` when absent)."""
        for uri in self._san_uris:
            if uri.lower().startswith("urn:uuid:"):
                return uri[len("urn:uuid:") :]
        return ""

    @cached_property
    def email(self) -> str:
        try:
            san = self.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return ""
        emails = san.value.get_values_for_type(x509.RFC822Name)
        return emails[0] if emails else ""

    @cached_property
    def is_ca(self) -> bool:
        try:
            ext = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            return False
        return bool(ext.value.ca)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        key = self.certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise CredentialInvalid(f"{self.subject_cn}: only RSA keys are supported")
        return key

    @cached_property
    def ski(self) -> str:
        """subjectKeyIdentifier as lower-case hex without colons (computed if absent)."""
        try:
            ext = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            return ext.value.digest.hex()
        except x509.ExtensionNotFound:
            return x509.SubjectKeyIdentifier.from_public_key(self.public_key).digest.hex()

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, lower-case hex."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @cached_property
    def chain_fingerprints(self) -> tuple[str, ...]:
        """The fingerprints of the certificate and each issuer in the chain."""
        return tuple(c.fingerprint(hashes.SHA256()).hex() for c in (self.certificate, *self.chain))

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @cached_property
    def subject_cn(self) -> str:
        return _cn_of(self.certificate.subject)

    @cached_property
    def issuer_cn(self) -> str:
        return _cn_of(self.certificate.issuer)

    @property
    def is_self_signed(self) -> bool:
        return self.certificate.subject == self.certificate.issuer

    @property
    def parent(self) -> GID | None:
        """The issuer's GID (with the rest of the chain), or None at the end of the chain."""
        if not self.chain:
            return None
        return GID(certificate=self.chain[0], chain=self.chain[1:])

    def __repr__(self) -> str:
        return f"GID({self.urn or self.subject_cn!r}, chain={len(self.chain)})"


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parsed_gid(raw: bytes) -> GID:
    certs = _load_certificates(raw)
    return GID(certificate=certs[0], chain=tuple(certs[1:]))


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _san_uris(certificate: x509.Certificate) -> tuple[str, ...]:
    """A certificate's subjectAltName URIs (by certificate: equal DER, one entry)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.value.get_values_for_type(x509.UniformResourceIdentifier))


def _pem_bodies(raw: bytes) -> list[bytes]:
    """The base64 bodies of every PEM certificate block, whatever lies between them."""
    bodies = []
    start = raw.find(_BEGIN)
    while start >= 0:
        end = raw.find(_END, start)
        if end < 0:
            raise CredentialInvalid("truncated PEM certificate (no END line)")
        bodies.append(raw[start + len(_BEGIN) : end])
        start = raw.find(_BEGIN, end)
    return bodies


def _load_certificates(data: str | bytes) -> list[x509.Certificate]:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_PEM_BYTES:
        raise CredentialInvalid(f"certificate data larger than {MAX_PEM_BYTES} bytes")
    blocks = _pem_bodies(raw)
    if not blocks:
        blocks = [raw] if raw.strip() else []
    if not blocks:
        raise CredentialInvalid("no certificate found (expected PEM or base64 DER)")
    certs = []
    for block in blocks:
        try:
            der = base64.b64decode(b"".join(block.split()), validate=True)
            certs.append(x509.load_der_x509_certificate(der))
        except (ValueError, binascii.Error) as exc:
            raise CredentialInvalid(f"malformed certificate: {exc}") from None
    return certs


def _service_of(urn: str) -> str | None:
    _, type = urn_to_hrn(urn)
    return type.split("+", 1)[1] if type.startswith("authority+") else None


def _default_cn(urn: str) -> str:
    hrn, _ = urn_to_hrn(urn)
    service = _service_of(urn)
    return f"{hrn}.{service}" if service else hrn


def _key_usage(is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not is_ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def _subject_alt_names(
    urn: str,
    uuid: str,
    email: str | None,
    dns_names: Iterable[str],
    ip_addresses: Iterable[str],
) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(urn),
        x509.UniformResourceIdentifier(f"urn:uuid:{uuid}"),
    ]
    if email:
        names.append(x509.RFC822Name(email))
    names.extend(x509.DNSName(host) for host in dns_names)
    try:
        names.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses)
    except ValueError as exc:
        raise BadArgs(f"not an IP address: {exc}") from None
    return x509.SubjectAlternativeName(names)


def _authority_key_id(issuer: GID) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier(
        key_identifier=bytes.fromhex(issuer.ski),
        authority_cert_issuer=None,
        authority_cert_serial_number=None,
    )


def create_bootstrap_certificate(
    hrn: str, key: rsa.RSAPrivateKey, lifetime: timedelta = timedelta(days=365)
) -> GID:
    """A self-signed certificate with only `CN=<hrn>` (no URN): what a client presents to the
    registry's bootstrap (`registry-api.md`), which reads nothing from it but its key."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hrn[:CN_MAX])])
    now = utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .sign(key, hashes.SHA256())
    )
    return GID(certificate=cert)


def create_gid(
    *,
    urn: str,
    public_key: rsa.RSAPublicKey,
    issuer_key: rsa.RSAPrivateKey,
    issuer: GID | None = None,
    uuid: str | None = None,
    email: str | None = None,
    is_ca: bool = False,
    lifetime: timedelta = timedelta(days=365),
    cn: str | None = None,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
) -> GID:
    """Issue a GID for `urn` signed by `issuer` (self-signed when None) with SHA-256.

    notBefore is now-5min; notAfter is now+lifetime, capped at the issuer's notAfter. This is
    the low-level tool: the subtree rules are enforced by `sfa.trust.hierarchy`.
    """
    Xrn.from_urn(urn)  # validates
    if issuer is None and not public_keys_equal(issuer_key.public_key(), public_key):
        raise BadArgs("a self-signed GID must be signed with the private key of its own key")
    if issuer is not None and not public_keys_equal(issuer_key.public_key(), issuer.public_key):
        raise BadArgs(f"the signing key does not belong to the issuer {issuer.urn}")
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, (cn or _default_cn(urn))[:CN_MAX])]
    )
    now = utcnow()
    not_after = now + lifetime
    if issuer is not None:
        not_after = min(not_after, issuer.not_after)
    self_ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(_key_usage(is_ca), critical=True)
        .add_extension(
            _subject_alt_names(
                urn, uuid or str(uuidlib.uuid4()), email, dns_names, ip_addresses
            ),
            critical=False,
        )
        .add_extension(self_ski, critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(_authority_key_id(issuer), critical=False)
    else:
        aki = x509.AuthorityKeyIdentifier(self_ski.digest, None, None)
        builder = builder.add_extension(aki, critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    chain = (issuer.certificate, *issuer.chain) if issuer else ()
    return GID(certificate=cert, chain=chain)
